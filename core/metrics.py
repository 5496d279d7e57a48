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
    """Scores averaged over chips, a chip with no slump and no prediction counting as perfect (1).

    The study also averages over chips but counts such a chip 0; see study_scores for its convention.
    """
    if not confusions:
        return {}
    per_chip = [scores(c) for c in confusions]
    return {k: float(np.mean([s[k] for s in per_chip])) for k in per_chip[0]}


STUDY_EPS = 1e-6


def study_scores(confusions: list[Confusion], eps: float = STUDY_EPS) -> dict[str, float]:
    """The authors' per-chip convention (their metrics.py), for comparison with the paper's numbers.

    Per chip, for the slump class and for the background class alike: precision tp/(tp+fp+ε), recall
    tp/(tp+fn+ε), F1 2tp/(2tp+fp+fn+ε), IoU tp/(tp+fp+fn+ε), so a chip with no slump and no prediction scores
    0 for slumps (not 1 as in mean_scores); each is the mean over all chips. "macro_*" is the mean of the slump
    and background scores (the paper's "F1 score" column); overall accuracy is the mean of the chips'.

    Returns:
        {} for no chips, else precision, recall, f1, iou (slump class), the same with "_background", the
        "macro_" means and "overall_accuracy".

    """
    if not confusions:
        return {}
    a = np.array([(c.tp, c.fp, c.fn, c.tn) for c in confusions], dtype=np.float64)
    tp, fp, fn, tn = a.T

    def cls(t: np.ndarray, f_p: np.ndarray, f_n: np.ndarray) -> dict[str, float]:
        return {
            "precision": float(np.mean(t / (t + f_p + eps))),
            "recall": float(np.mean(t / (t + f_n + eps))),
            "f1": float(np.mean(2 * t / (2 * t + f_p + f_n + eps))),
            "iou": float(np.mean(t / (t + f_p + f_n + eps))),
        }

    pos, neg = cls(tp, fp, fn), cls(tn, fn, fp)
    out = dict(pos)
    out.update({f"{k}_background": v for k, v in neg.items()})
    out.update({f"macro_{k}": 0.5 * (pos[k] + neg[k]) for k in pos})
    out["overall_accuracy"] = float(np.mean((tp + tn) / (tp + fp + fn + tn + eps)))
    return out


def chip_objects(pred: np.ndarray, truth: np.ndarray, connectivity: int = 8) -> tuple[int, int, int]:
    """Object counts on one chip as the study counts them: (tp, fp, fn).

    Objects are connected components (8- or 4-connectivity) of each mask, cut at the chip's edge; a predicted
    object touching any true object by one pixel or more is a true positive, one touching none a false
    positive; true objects touched by no prediction are false negatives.
    """
    from skimage.measure import label

    if connectivity not in (4, 8):
        raise ValueError(f"Connectivity must be 4 or 8, not {connectivity}.")
    conn = 2 if connectivity == 8 else 1
    p_lab, n_p = label(pred.astype(bool), connectivity=conn, return_num=True)
    t_lab, n_t = label(truth.astype(bool), connectivity=conn, return_num=True)
    both = (p_lab > 0) & (t_lab > 0)
    matched_pred = np.unique(p_lab[both])
    matched_truth = np.unique(t_lab[both])
    return len(matched_pred), n_p - len(matched_pred), n_t - len(matched_truth)


def chips_objects(
    pred: np.ndarray, truth: np.ndarray, valid: np.ndarray | None = None, connectivity: int = 8
) -> list[tuple[int, int, int]]:
    """chip_objects of each chip of a batch (N, h, w), pixels outside `valid` (N, h, w) taken as no slump."""
    p, t = pred.astype(bool), truth.astype(bool)
    if valid is not None:
        v = valid.astype(bool)
        p, t = p & v, t & v
    return [chip_objects(a, b, connectivity) for a, b in zip(p, t)]


def object_scores(counts: list[tuple[int, int, int]]) -> dict[str, float]:
    """Precision, recall and F1 of summed (tp, fp, fn) object counts (the study's aggregation over chips)."""
    tp, fp, fn = (int(sum(c[i] for c in counts)) for i in range(3))
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": p, "recall": r, "f1": f1}


def bootstrap_f1(
    groups: list[list[Confusion]], n: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the pooled F1 over seeds and chips.

    Each replicate draws the groups (one per training seed) with replacement, then within each drawn group its
    chips with replacement, and scores the pooled F1 of all drawn chips; so the interval covers both the
    chance of the test chips and that of the training seed.

    Args:
        groups: per seed, the per-chip confusions of the test split.
        n: replicates.
        seed: random seed of the resampling.
        level: coverage of the interval.

    Returns:
        (low, high); (nan, nan) when there are no chips.

    """
    arrays = [np.array([(c.tp, c.fp, c.fn) for c in g], dtype=np.float64) for g in groups if g]
    if not arrays:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    f1 = np.empty(n)
    for i in range(n):
        total = np.zeros(3)
        for g in rng.integers(0, len(arrays), len(arrays)):
            a = arrays[g]
            total += a[rng.integers(0, len(a), len(a))].sum(axis=0)
        tp, fp, fn = total
        f1[i] = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0
    alpha = (1 - level) / 2
    return float(np.quantile(f1, alpha)), float(np.quantile(f1, 1 - alpha))


def bootstrap_ranks(
    models: dict[str, list[list[Confusion]]], n: int = 1000, seed: int = 0
) -> dict[str, dict[str, float]]:
    """How stable a ranking by pooled F1 is: a paired bootstrap over seeds and test chips.

    Every model must have been tested on the same chips for each seed (the same split), in the same order. Each
    replicate draws the seeds with replacement, then each drawn seed's chips with replacement, the same draws for
    every model, and ranks the models by the pooled F1 of the drawn chips (equal F1s in the order given).

    Args:
        models: per model, per seed, the per-chip confusions of the test split.
        n: replicates.
        seed: random seed of the resampling.

    Returns:
        per model: "p_best" (share of replicates where it ranks first), "rank_low" and "rank_high" (2.5 and 97.5
        percentiles of its rank, 1 = best).

    Raises:
        ValueError: the models were not tested on the same number of seeds and chips.

    """
    names = list(models)
    arrays = {m: [np.array([(c.tp, c.fp, c.fn) for c in g], dtype=np.float64) for g in models[m]] for m in names}
    shapes = {m: [a.shape for a in arrays[m]] for m in names}
    if len({tuple(v) for v in shapes.values()}) != 1:
        raise ValueError(f"The models were not tested on the same seeds and chips: {shapes}.")
    n_seeds = len(arrays[names[0]])
    rng = np.random.default_rng(seed)
    ranks = np.empty((n, len(names)))
    for i in range(n):
        total = np.zeros((len(names), 3))
        for g in rng.integers(0, n_seeds, n_seeds):
            picks = rng.integers(0, len(arrays[names[0]][g]), len(arrays[names[0]][g]))
            for j, m in enumerate(names):
                total[j] += arrays[m][g][picks].sum(axis=0)
        tp, fp, fn = total.T
        denom = 2 * tp + fp + fn
        f1 = np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 1.0)
        ranks[i] = np.argsort(np.argsort(-f1, kind="stable"), kind="stable") + 1
    return {
        m: {
            "p_best": float(np.mean(ranks[:, j] == 1)),
            "rank_low": float(np.quantile(ranks[:, j], 0.025)),
            "rank_high": float(np.quantile(ranks[:, j], 0.975)),
        }
        for j, m in enumerate(names)
    }


def summarize(confusions: list[Confusion]) -> dict[str, dict[str, float]]:
    """Pooled, per-chip and the study's per-chip scores of a list of chip confusions.

    Returns:
        {"pooled": scores of all pixels together, "per_chip": mean of per-chip scores (empty chip = 1),
        "study": study_scores (the authors' convention), "counts": totals}.

    """
    total = sum(confusions, Confusion())
    return {
        "pooled": scores(total),
        "per_chip": mean_scores(confusions),
        "study": study_scores(confusions),
        "counts": asdict(total),
    }
