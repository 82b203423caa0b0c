"""What a cached network says about its own training."""
from pmatrack_mini.config import get_config
from pmatrack_mini.experiments.trained import stage2_data_size, training_summary


def test_training_summary_reads_the_config():
    cfg = get_config("cpu-mini", stage=2, train=dict(steps=20, batch_size=8), align=dict(lambda_cost=0.1,
                                                                                         stages=("center", "scale")))
    s = training_summary(cfg)
    assert "20 steps x batch 8" in s and "lambda_cost 0.1" in s and "center+scale" in s
    assert f"{stage2_data_size(20)[0]} x {stage2_data_size(20)[1]}-frame" in s
    assert stage2_data_size(20) != stage2_data_size(400)
    assert "stage-1 tracker: 30 steps" in training_summary(get_config("cpu-mini", train=dict(steps=30)))


def test_folder_lock_makes_a_second_builder_wait(tmp_path):
    """Two builders of one cached folder (two notebooks, two test workers): the second enters after the first left."""
    import threading
    import time

    from pmatrack_mini.utils import folder_lock

    events = []

    def builder(name, hold):
        with folder_lock(tmp_path / "set"):
            events.append(f"{name} in")
            time.sleep(hold)
            events.append(f"{name} out")

    first = threading.Thread(target=builder, args=("a", 0.3))
    first.start()
    time.sleep(0.05)
    second = threading.Thread(target=builder, args=("b", 0.0))
    second.start()
    first.join(), second.join()
    assert events == ["a in", "a out", "b in", "b out"]


def test_run_folder_keys_on_what_decides_the_weights():
    """A stage-1 tracker's folder ignores the alignment section and the operational settings; a setting that changes
    the weights (or a stage-2 option, for a stage-2 network) changes it."""
    from pathlib import Path

    from pmatrack_mini.config import get_config, stage2_config
    from pmatrack_mini.experiments.trained import run_folder

    key = lambda cfg: run_folder(Path("w"), "x", cfg).name
    base = get_config("cpu-mini", train=dict(steps=10))
    assert key(base) == key(get_config("cpu-mini", align=dict(one_shot=True), train=dict(steps=10)))
    assert key(base) == key(get_config("cpu-mini", train=dict(steps=10, log_every=3, ckpt_every=7, num_workers=1)))
    assert key(base) != key(get_config("cpu-mini", train=dict(steps=10, lr=1e-3)))
    s2 = stage2_config(base)
    assert key(s2) != key(stage2_config(base, align=dict(one_shot=True)))
