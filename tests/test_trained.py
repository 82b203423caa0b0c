"""What a cached network says about its own training."""
from pmatrack_mini.config import get_config
from pmatrack_mini.trained import stage2_data_size, training_summary


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
