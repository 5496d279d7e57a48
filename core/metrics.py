"""Pixel-level segmentation metrics: confusion counts, scores, pooled and per-chip averages."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Confusion:
    """Pixel counts of a binary comparison."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def __add__(self, other: Confusion) -> Confusion:
        return Confusion(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn)


def confusion(pred: np.ndarray, truth: np.ndarray, valid: np.ndarray | None = None) -> Confusion:
    """Count TP/FP/FN/TN of boolean arrays over the valid pixels."""
    p = pred.astype(bool)
    t = truth.astype(bool)
    if valid is not None:
        v = valid.astype(bool)
        p, t = p[v], t[v]
    tp = int(np.count_nonzero(p & t))
    fp = int(np.count_nonzero(p & ~t))
    fn = int(np.count_nonzero(~p & t))
    return Confusion(tp, fp, fn, int(p.size) - tp - fp - fn)


def scores(c: Confusion) -> dict[str, float]:
    """Precision, recall, F1, IoU, overall accuracy and Cohen's kappa.

    When neither prediction nor truth has a positive pixel, P, R, F1 and IoU are 1 (perfect agreement on an
    empty area); otherwise an empty denominator gives 0.
    """
    tp, fp, fn, tn = c.tp, c.fp, c.fn, c.tn
    n = tp + fp + fn + tn
    if tp + fp + fn == 0:
        p = r = f1 = iou = 1.0
    else:
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * tp / (2 * tp + fp + fn)
        iou = tp / (tp + fp + fn)
    oa = (tp + tn) / n if n else 1.0
    pe = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / (n * n) if n else 0.0
    kappa = (oa - pe) / (1 - pe) if pe < 1 else 1.0
    return {"precision": p, "recall": r, "f1": f1, "iou": iou, "overall_accuracy": oa, "kappa": kappa}


def mean_scores(confusions: list[Confusion]) -> dict[str, float]:
    """Scores averaged over chips (the study reports metrics this way), alongside the pooled ones."""
    if not confusions:
        return {}
    per_chip = [scores(c) for c in confusions]
    return {k: float(np.mean([s[k] for s in per_chip])) for k in per_chip[0]}


def summarize(confusions: list[Confusion]) -> dict[str, dict[str, float]]:
    """{"pooled": scores of all pixels together, "per_chip": mean of per-chip scores, "counts": totals}."""
    total = sum(confusions, Confusion())
    return {"pooled": scores(total), "per_chip": mean_scores(confusions), "counts": asdict(total)}
