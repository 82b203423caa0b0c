"""The scorecard: verdicts computed from fabricated results with known differences, the README's block in sync."""
import json
from pathlib import Path

import numpy as np
import pytest

from pmatrack_mini.errors import PMATrackError
from pmatrack_mini.experiments import scorecard as sc

ROOT = Path(__file__).resolve().parents[1]
SEQS = [f"seq{i:02d}" for i in range(12)]


def _row(pr_mean: float, macs: float = 1e9, usage=None, tocu=None, noise: float = 0.01, seed: int = 0) -> dict:
    """A table row whose per-sequence PR scatter around ``pr_mean`` (all levels alike, the stress set included)."""
    rng = np.random.default_rng(seed)
    per = {s: float(np.clip(pr_mean + noise * rng.standard_normal(), 0, 1)) for s in SEQS}
    mean = float(np.mean(list(per.values())))
    level = dict(PR=mean, NPR=mean, SR=mean, macs_per_frame=macs, tocu_macs_per_frame=0.0,
                 expert_usage=usage or {}, tocu=tocu)
    levels = ("none", "dynamic", "stress", "photo")
    return dict(result={lvl: dict(level) for lvl in levels},
                per_sequence={lvl: {s: dict(PR=v, NPR=v, SR=v) for s, v in per.items()} for lvl in levels})


def _write(results: Path, components: dict, progressive: dict) -> Path:
    (results / "reproduce").mkdir(parents=True, exist_ok=True)
    for name, rows in (("components", components), ("progressive", progressive)):
        (results / "reproduce" / f"{name}.json").write_text(json.dumps({"rows": rows}))
    return results


def _by_claim(results: Path) -> dict:
    return {c.claim.split(":")[0].split(" (")[0]: c for c in sc.scorecard(results)}


def test_claims_that_hold(tmp_path):
    comp = {sc.STATIC: _row(0.40, seed=1), sc.TRE: _row(0.45, 1.0e9, seed=2), sc.FME: _row(0.50, 1.2e9, seed=3),
            sc.DPE: _row(0.55, 1.5e9, seed=4), sc.NO_TOCU: _row(0.56, 1.1e9, {"center": {"tre": 0.7, "dpe": 0.3}},
                                                               seed=5),
            sc.FULL: _row(0.60, 1.1e9, tocu=dict(acceptance_per_frame=0.3), seed=6)}
    prog = {sc.STATIC: _row(0.40, seed=7), sc.STAGES[0]: _row(0.45, seed=8), sc.STAGES[1]: _row(0.50, seed=9),
            sc.STAGES[2]: _row(0.55, seed=10), sc.ONE_SHOT: _row(0.48, seed=11)}
    claims = sc.scorecard(_write(tmp_path, comp, prog))
    verdicts = {c.claim: c.verdict for c in claims}
    assert [verdicts[c.claim] for c in claims[:6] if "Gap: the paper's alignment" not in c.claim] == ["holds"] * 5
    assert [c.verdict for c in claims[-2:]] == ["holds", "holds"]          # modality failure, photographs
    routing = next(c for c in claims if c.claim.startswith("Routing"))
    assert "0.73 x DPE only" in routing.number and "tre 0.70" in routing.reason
    assert "[" in routing.number                            # an interval, from the per-sequence scores


def test_claims_that_do_not_hold_or_are_partial(tmp_path):
    comp = {sc.STATIC: _row(0.50, seed=1), sc.TRE: _row(0.55, 1.0e9, seed=2), sc.FME: _row(0.52, 1.2e9, seed=3),
            sc.DPE: _row(0.40, 1.5e9, seed=4), sc.NO_TOCU: _row(0.30, 1.45e9, seed=5), sc.FULL: _row(0.25, seed=6)}
    prog = {sc.STATIC: _row(0.40, seed=7), sc.STAGES[0]: _row(0.45, seed=8), sc.STAGES[1]: _row(0.45, seed=9,
                                                                                                   noise=0.05),
            sc.STAGES[2]: _row(0.35, seed=10)}
    claims = {c.claim: c for c in sc.scorecard(_write(tmp_path, comp, prog))}
    get = lambda start: next(c for t, c in claims.items() if t.startswith(start))
    assert get("Progressive alignment").verdict == "partly"      # one step up, one within noise, one down
    assert get("Progressive beats").verdict == "not measured" and sc.ONE_SHOT in get("Progressive beats").reason
    assert get("Each expert").verdict == "partly"                # TRE and FME above static, DPE below
    assert get("Routing").verdict == "does not hold"             # 0.97 x DPE only's MACs, and 10 points below it
    assert get("Routing").number.startswith("MACs 0.97")
    assert get("TOCU").verdict == "does not hold"
    assert get("Gap: the paper does not test").verdict == "does not hold"
    assert get("Gap: alignment learned").verdict == "does not hold"


def test_differences_within_noise_are_not_shown_rather_than_refuted(tmp_path):
    """Equal means with a wide scatter: every interval straddles 0, so no claim is refuted, and none holds."""
    noisy = lambda seed: _row(0.45, seed=seed, noise=0.2)
    comp = {sc.STATIC: noisy(1), sc.TRE: noisy(2), sc.FME: noisy(3), sc.DPE: noisy(4),
            sc.NO_TOCU: noisy(5), sc.FULL: noisy(6)}
    prog = {sc.STATIC: noisy(7), sc.STAGES[0]: noisy(8), sc.STAGES[1]: noisy(9), sc.STAGES[2]: noisy(10),
            sc.ONE_SHOT: noisy(11)}
    claims = {c.claim.split(" (")[0]: c for c in sc.scorecard(_write(tmp_path, comp, prog))}
    for start in ("Progressive alignment", "Progressive beats", "Each expert", "TOCU", "Gap: the paper does not test",
                  "Gap: alignment learned"):
        claim = next(c for t, c in claims.items() if t.startswith(start))
        assert claim.verdict == "not shown", (start, claim.number)
        assert "within noise" in claim.reason or "within noise" in claim.number


def test_missing_rows_are_named_not_guessed(tmp_path):
    claims = sc.scorecard(_write(tmp_path, {"Baseline": _row(0.5)}, {}))
    assert all(c.verdict == "not measured" for c in claims if "stage2_alignment" not in c.reason
               and "router_inputs" not in c.reason)
    assert any(sc.DPE in c.reason for c in claims)


def test_tables_without_per_sequence_scores_say_so(tmp_path):
    prog = {lab: _row(v) for lab, v in zip((sc.STATIC,) + sc.STAGES, (0.3, 0.4, 0.5, 0.6))}
    for r in prog.values():
        del r["per_sequence"]
    claim = sc.progressive_stages(sc.Table(_write(tmp_path, {}, prog) / "reproduce" / "progressive.json"))
    assert claim.verdict == "holds" and "no interval" in claim.number and "[" not in claim.number


def test_readme_block_is_the_printed_card():
    text = sc.markdown(sc.scorecard(ROOT / "results"))
    assert sc.readme_block(ROOT / "README.md") == text, "README's scorecard is stale: pmatrack-mini scorecard --readme README.md"


def test_cli_rewrites_the_readme_block_and_refuses_a_missing_folder(tmp_path, capsys):
    from pmatrack_mini.cli import main

    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{sc.BEGIN}\nold\n{sc.END}\n\nafter\n")
    out = tmp_path / "card.json"
    assert main(["scorecard", "--results", str(ROOT / "results"), "--readme", str(readme), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert sc.readme_block(readme) == printed and readme.read_text().endswith(f"{sc.END}\n\nafter\n")
    assert len(json.loads(out.read_text())) == 9
    assert main(["scorecard", "--results", str(tmp_path / "no")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no such results folder" in err
    plain = tmp_path / "plain.md"
    plain.write_text("no markers\n")
    with pytest.raises(PMATrackError, match="no <!-- scorecard -->"):
        sc.update_readme(plain, "x")
    assert plain.read_text() == "no markers\n"
