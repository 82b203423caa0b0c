"""Per-sequence bootstrap intervals: is a difference between two tracked rows more than the luck of the sequences?

A table row's PR (NPR, SR) is the mean of its per-sequence scores (``evaluate``: the mean of per-sequence curves,
read at a threshold, is the mean of the per-sequence values). Two rows tracked on the same sequences differ by the
mean of their per-sequence differences; resampling the sequences with replacement (``scipy.stats.bootstrap``,
paired, percentile method, seeded) gives a 95 % interval for it. A claim is then

* **reproduced** (a goal **met**) when the whole interval lies on the claimed side of its threshold,
* **not reproduced** (**NOT met**) when the whole interval lies on the other side,
* **within noise** when the interval straddles the threshold: these sequences cannot tell.

With fewer than two sequences there is no interval; the point estimate alone decides and the line says so.
"""
from __future__ import annotations

import numpy as np

RESAMPLES, CONFIDENCE, SEED = 2000, 0.95, 0


def paired_interval(statistic, *samples, resamples: int = RESAMPLES, seed: int = SEED) -> tuple[float, float, float]:
    """(estimate, low, high) of ``statistic(*samples)``, the samples paired by sequence (equal lengths), with a
    percentile bootstrap over sequences; low = high = NaN with fewer than two sequences."""
    from scipy.stats import bootstrap

    samples = [np.asarray(s, dtype=np.float64) for s in samples]
    estimate = float(statistic(*samples))
    if len(samples[0]) < 2:
        return estimate, float("nan"), float("nan")
    res = bootstrap(samples, statistic, paired=True, vectorized=False, n_resamples=resamples,
                    confidence_level=CONFIDENCE, method="percentile", random_state=np.random.default_rng(seed))
    return estimate, float(res.confidence_interval.low), float(res.confidence_interval.high)


def mean_difference(a, b) -> float:
    """mean(b - a): how much row b scores above row a."""
    return float(np.mean(np.asarray(b) - np.asarray(a)))


def gap_share(full, base, oracle) -> float:
    """The share of the base-to-oracle gap the full model closes: (mean full - mean base) / (mean oracle - mean
    base); NaN when the oracle is not above the base."""
    gap = np.mean(oracle) - np.mean(base)
    return float((np.mean(full) - np.mean(base)) / gap) if gap > 0 else float("nan")


def verdict(estimate: float, low: float, high: float, threshold: float = 0.0,
            words: tuple = ("reproduced", "NOT reproduced", "within noise")) -> str:
    """``words[0]`` when the interval (or, without one, the estimate) lies above ``threshold``, ``words[1]`` when
    below or on it, ``words[2]`` when the interval straddles it."""
    if np.isnan(low) or np.isnan(high):
        return words[0] if estimate > threshold else words[1]
    if low > threshold:
        return words[0]
    if high <= threshold:
        return words[1]
    return words[2]


def interval_text(estimate: float, low: float, high: float, scale: float = 100.0, signed: bool = True) -> str:
    """``+2.1 [-0.4, +4.6]`` (``scale`` 100: fractions as points), or ``+2.1`` without an interval."""
    f = (lambda v: f"{scale * v:+.1f}") if signed else (lambda v: f"{scale * v:.2f}")
    if np.isnan(low) or np.isnan(high):
        return f(estimate)
    return f"{f(estimate)} [{f(low)}, {f(high)}]"


def paired_values(per_sequence: dict, labels: list, level: str, metric: str) -> list[np.ndarray]:
    """Per-sequence values of ``metric`` for each row label at ``level``, in one sequence order.
    ``per_sequence``: {label: {level: {sequence: {metric: value}}}}."""
    names = sorted(per_sequence[labels[0]][level])
    return [np.array([per_sequence[lab][level][n][metric] for n in names]) for lab in labels]


def mean_interval(values) -> tuple[float, float, float]:
    """(mean, low, high): a row's score (the mean of its per-sequence values) with its bootstrap 95 % interval."""
    return paired_interval(lambda v: float(np.mean(v)), values)
