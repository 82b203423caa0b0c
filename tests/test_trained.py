"""What a cached network says about its own training."""
from pathlib import Path

import pytest

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


def test_training_summary_names_the_family_sets():
    """A network of ``family`` was trained on the reproduction's sets, not on those ``stage2_network`` would use."""
    cfg = get_config("cpu-mini", stage=2, train=dict(steps=400, batch_size=32))
    s = training_summary(cfg, (16, 80, "mixed"))
    assert "16 x 80-frame" in s and "textures and photographs" in s
    assert f"{stage2_data_size(400)[0]} x {stage2_data_size(400)[1]}-frame" not in s


def test_the_notebooks_and_reproduce_share_one_cache(tmp_path, monkeypatch):
    """``family`` is the Workspace ``pmatrack-mini reproduce --out runs/reproduce`` uses (full mode), so either one
    reuses what the other trained; CI mode keeps reproduce --fast's steps and sets at the cpu-mini size, elsewhere."""
    import dataclasses

    from pmatrack_mini.experiments import reproduce, trained

    monkeypatch.setattr(trained, "FAST", False)
    nets = trained.family(tmp_path)
    assert nets.root == tmp_path / "reproduce" and nets.rc == reproduce.ReproduceConfig()
    reproduce.Workspace(tmp_path / "reproduce", reproduce.ReproduceConfig(), progress=False)   # accepted: same record
    monkeypatch.setattr(trained, "FAST", True)
    fast = trained.family(tmp_path)
    assert fast.root == tmp_path / "reproduce-ci"
    assert fast.rc == dataclasses.replace(reproduce.FAST, tiny=False) and not fast.rc.tiny
    assert "1500 steps" in trained.family_modes() and f"{reproduce.FAST.stage2_steps} steps" in trained.family_modes()


def test_further_alignment_settings_train_their_own_network(tmp_path, monkeypatch):
    """The notebooks' sweeps: a setting on top of a variant gets its own run folder, named by what differs from the
    variant, and changes only that setting; a setting equal to the variant's is the tables' network itself."""
    from pmatrack_mini.experiments.reproduce import FAST, Workspace
    from pmatrack_mini.experiments.trained import family_network
    from pmatrack_mini.models.checkpoint import checkpoint_config

    monkeypatch.chdir(tmp_path)
    ws = Workspace("a", FAST, progress=False)
    base, swept = ws.stage2("tre"), ws.stage2("tre", lambda_cost=0.5)
    assert base.parent.name == "stage2_tre" and swept.parent.name == "stage2_tre_lambda_cost-0.5"
    assert ws.stage2("tre", lambda_cost=0.01, experts=["tre"]) == base          # the variant's own values
    a, b = checkpoint_config(base).to_dict(), checkpoint_config(swept).to_dict()
    assert (a["align"]["lambda_cost"], b["align"]["lambda_cost"]) == (0.01, 0.5)
    a["align"].pop("lambda_cost"), b["align"].pop("lambda_cost")
    assert a == b
    longer = ws.stage2("tre", steps=FAST.stage2_steps + 2)                     # another length: its own folder
    assert longer.parent.name == f"stage2_tre_steps-{FAST.stage2_steps + 2}"
    assert checkpoint_config(longer).train.steps == FAST.stage2_steps + 2 and ws.stage2("tre", steps=None) == base
    assert ws.cost()["stage2_runs"] == ["stage2_tre"]                           # the tables' networks only
    (tmp_path / "nb").mkdir()
    monkeypatch.chdir(tmp_path / "nb")                                         # a notebook reads them from notebooks/
    model, cfg = family_network(Workspace("../a", FAST, progress=False), "tre")
    assert checkpoint_config(Path("../a/runs/stage2_tre/final.pt")).train.init == "a/runs/stage1/final.pt"
    assert cfg.train.init == "../a/runs/stage1/final.pt" and Path(cfg.train.init).is_file()
    assert "stage-1 tracker (4 steps" in training_summary(cfg)                 # reads the tracker through it


def test_setting_names_are_folder_names():
    from pmatrack_mini.errors import PMATrackError
    from pmatrack_mini.experiments.trained import setting_name

    assert [setting_name("lambda_cost", 0.0), setting_name("lambda_cost", 1e-3), setting_name("layers", (4, 4, 5)),
            setting_name("tcmda", False)] == ["lambda_cost-0", "lambda_cost-0.001", "layers-4+4+5", "tcmda-False"]
    with pytest.raises(PMATrackError, match="cannot be named"):
        setting_name("router_input", "a/b")
