"""The LFW verification protocol as pure maths on similarity scores (numpy only).

Inputs everywhere are parallel arrays over pairs:

- ``similarities``: cosine similarity per pair, or None / NaN when a pair
  could not be scored (a face was not found in one of its photos);
- ``labels``: True for a same-person pair;
- ``folds``: the fold number of each pair (LFW: row // 600, ten folds of
  300 same + 300 different pairs).

A pair is predicted 'same' when its similarity is >= the threshold. An
unscored pair is always a wrong answer: it counts in every denominator and is
never right, whether in the folds a threshold is fitted on or in the held-out
fold. Importing this module does no work.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

LFW_FOLD_SIZE = 600
_EDGE = 1e-4  # how far outside the observed scores the 'accept all' / 'reject all' thresholds lie


def lfw_folds(n_pairs: int, fold_size: int = LFW_FOLD_SIZE) -> np.ndarray:
    """Fold number of each row of LFW's pairs file: row // fold_size."""
    return np.arange(n_pairs) // fold_size


def as_scores(similarities: Sequence[float | None] | np.ndarray) -> np.ndarray:
    """float64 array with NaN for unscored pairs."""
    return np.array([np.nan if s is None else s for s in similarities], dtype=np.float64)


def candidate_thresholds(scores: np.ndarray) -> np.ndarray:
    """Every threshold that splits the scored values differently, as midpoints.

    One below the lowest score (accept all scored), one between each two
    neighbouring distinct scores, one above the highest (reject all).
    """
    values = np.unique(scores[np.isfinite(scores)])
    if len(values) == 0:
        return np.array([0.0])
    midpoints = (values[1:] + values[:-1]) / 2
    return np.concatenate([[values[0] - _EDGE], midpoints, [values[-1] + _EDGE]])


def accuracies(scores: np.ndarray, labels: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Accuracy over all pairs (unscored ones wrong) at each threshold."""
    scores, labels = as_scores(scores), np.asarray(labels, dtype=bool)
    if len(scores) == 0:
        return np.zeros(len(thresholds))
    scored = np.isfinite(scores)
    same = np.sort(scores[scored & labels])
    different = np.sort(scores[scored & ~labels])
    true_accepts = len(same) - np.searchsorted(same, thresholds, side="left")  # same >= t
    true_rejects = np.searchsorted(different, thresholds, side="left")  # different < t
    return (true_accepts + true_rejects) / len(scores)


def best_threshold(similarities, labels) -> float:
    """The threshold of highest accuracy on these pairs.

    Ties (a plateau of equally good thresholds) go to the middle one, so the
    choice does not lean towards either end.
    """
    scores = as_scores(similarities)
    thresholds = candidate_thresholds(scores)
    found = accuracies(scores, labels, thresholds)
    best = np.flatnonzero(found == found.max())
    return float(thresholds[best[len(best) // 2]])


def accuracy_at(similarities, labels, threshold: float) -> float:
    """Share of pairs answered right at ``threshold`` (unscored pairs wrong)."""
    return float(accuracies(as_scores(similarities), labels, np.array([threshold]))[0])


@dataclass(frozen=True, slots=True)
class FoldResult:
    fold: int
    threshold: float  # fitted on the other folds
    accuracy: float  # on this fold
    pairs: int
    unscored: int


@dataclass(frozen=True, slots=True)
class CrossValidation:
    """Per-fold results of the k-fold protocol.

    ``self_fitted`` is True when there was a single fold, so its threshold
    had to be fitted on the same pairs it is scored on (optimistic).
    """

    folds: tuple[FoldResult, ...]
    self_fitted: bool = False

    @property
    def mean_accuracy(self) -> float:
        return float(np.mean([f.accuracy for f in self.folds]))

    @property
    def std_accuracy(self) -> float:
        """Standard deviation over the folds (population, ddof=0, as LFW results are usually given)."""
        return float(np.std([f.accuracy for f in self.folds]))

    @property
    def mean_threshold(self) -> float:
        return float(np.mean([f.threshold for f in self.folds]))

    def to_dict(self) -> dict:
        return {
            "mean_accuracy": self.mean_accuracy,
            "std_accuracy": self.std_accuracy,
            "mean_threshold": self.mean_threshold,
            "self_fitted": self.self_fitted,
            "folds": [
                {"fold": f.fold, "threshold": f.threshold, "accuracy": f.accuracy,
                 "pairs": f.pairs, "unscored": f.unscored}
                for f in self.folds
            ],
        }


def ten_fold_accuracy(similarities, labels, folds) -> CrossValidation:
    """LFW's k-fold protocol over whatever folds are present (ten for the full file).

    For each fold, the threshold that maximises accuracy on all the other folds
    is applied to it. With a single fold there is nothing else to fit on, so
    the threshold is fitted on that fold itself (``self_fitted``).
    """
    scores = as_scores(similarities)
    labels = np.asarray(labels, dtype=bool)
    folds = np.asarray(folds)
    if not (len(scores) == len(labels) == len(folds)):
        raise ValueError("similarities, labels and folds must have one entry per pair")
    fold_ids = np.unique(folds)
    if len(fold_ids) == 0:
        raise ValueError("no pairs")
    results = []
    for fold in fold_ids:
        test = folds == fold
        train = ~test if len(fold_ids) > 1 else test
        threshold = best_threshold(scores[train], labels[train])
        results.append(
            FoldResult(
                fold=int(fold),
                threshold=threshold,
                accuracy=accuracy_at(scores[test], labels[test], threshold),
                pairs=int(test.sum()),
                unscored=int((~np.isfinite(scores[test])).sum()),
            )
        )
    return CrossValidation(tuple(results), self_fitted=len(fold_ids) == 1)


@dataclass(frozen=True, slots=True)
class TarAtFar:
    far_target: float
    threshold: float
    tar: float  # same-person pairs accepted / all same-person pairs
    far: float  # different-person pairs accepted / all different-person pairs
    false_accepts: int
    different_pairs: int
    same_pairs: int

    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__slots__}


def tar_at_far(similarities, labels, far_target: float = 1e-3) -> TarAtFar:
    """True accept rate at the smallest threshold whose false accept rate is <= far_target.

    Rates are over all pairs of a kind; an unscored pair is never accepted (a
    rejected same-person pair, a correctly rejected different-person pair).
    """
    scores = as_scores(similarities)
    labels = np.asarray(labels, dtype=bool)
    different = np.sort(scores[~labels & np.isfinite(scores)])[::-1]
    same = scores[labels]
    n_different = int((~labels).sum())
    allowed = math.floor(far_target * n_different + 1e-9)
    if len(different) > allowed:
        # Accept strictly above the (allowed+1)-th highest impostor score.
        threshold = float(np.nextafter(different[allowed], np.inf))
    else:
        threshold = float(np.nanmin(scores)) if np.isfinite(scores).any() else 0.0
    false_accepts = int((different >= threshold).sum())
    return TarAtFar(
        far_target=far_target,
        threshold=threshold,
        tar=float((same >= threshold).sum() / len(same)) if len(same) else float("nan"),
        far=false_accepts / n_different if n_different else float("nan"),
        false_accepts=false_accepts,
        different_pairs=n_different,
        same_pairs=int(len(same)),
    )
