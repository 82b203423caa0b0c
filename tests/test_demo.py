"""make demo at toy size (the toy networks of conftest): the baseline, PMATrack and the exact-alignment ceiling run,
the printed scores are those of the written results, and the GIF shows RGB beside TIR."""
import numpy as np
from PIL import Image

from pmatrack_mini.data.dataset import load_dataset
from pmatrack_mini.evaluation.evaluate import evaluate_predictions, read_results
from pmatrack_mini.experiments import demo


def test_median_column_reads_the_align_csv_rows():
    rows = [dict(residual_crop_px="1.5"), dict(residual_crop_px=""), dict(residual_crop_px="4.5"), dict()]
    assert demo.median_column(rows, "residual_crop_px") == 3.0
    assert np.isnan(demo.median_column(rows, "residual_network_px"))


def test_demo_runs_both_trackers_and_reports_what_it_wrote(tmp_path, capsys, monkeypatch, stage1_checkpoint,
                                                         stage2_checkpoint):
    # the toy networks of conftest instead of the demo's trainings (trained.py's own tests train those)
    from pmatrack_mini.models import model_from_checkpoint

    monkeypatch.setattr(demo, "stage1_tracker", lambda *a, **k: model_from_checkpoint(stage1_checkpoint)[:2])
    monkeypatch.setattr(demo, "stage2_network", lambda *a, **k: model_from_checkpoint(stage2_checkpoint)[:2])
    out = tmp_path / "demo"
    assert demo.main(["--out", str(out), "--sequences", "2", "--frames", "10", "--stage1-steps", "2",
                      "--stage2-steps", "1", "--batch-size", "4"]) == 0
    text = capsys.readouterr().out
    seqs = load_dataset(out / "data" / "test_dynamic_2x10")
    rows = {line.split()[0]: line.split()[1:4] for line in text.splitlines() if line.split()[:1] in (["PR"], ["SR"])}
    for k, label in enumerate(("baseline", "PMATrack", "exact")):
        rep = evaluate_predictions(seqs, read_results(out / "results" / label, seqs))
        assert float(rows["PR"][k]) == round(100 * rep["PR"], 1)
        assert float(rows["SR"][k]) == round(100 * rep["SR"], 1)
    assert "static first-frame homography" in text and "TOCU accepted" in text
    assert (out / "curves.png").stat().st_size > 0
    gif = next(out.glob("pmatrack_vs_baseline_*.gif"))
    with Image.open(gif) as im:
        assert im.n_frames == 5                                                # every second of 10 frames
        w, h = im.size
    assert w > h                                                              # RGB | TIR side by side
