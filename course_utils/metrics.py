"""Segmentation metrics, all read off one confusion matrix.

The confusion matrix ``cm`` is a (C, C) int64 NumPy array: ``cm[i, j]`` counts the pixels whose
ground truth is class ``i`` (row) and whose prediction is class ``j`` (column). Pixels whose
ground truth is the ignore index (255, VOC's "void") are not counted at all.

From it, per class ``c``::

    TP = cm[c, c]             (ground truth c, predicted c)
    FN = cm[c, :].sum() - TP  (ground truth c, predicted something else)
    FP = cm[:, c].sum() - TP  (predicted c, ground truth something else)
    IoU  = TP / (TP + FP + FN)        = |A ∩ B| / |A ∪ B|
    Dice = 2 TP / (2 TP + FP + FN)    = 2 |A ∩ B| / (|A| + |B|)

Because the matrix is a sum over pixels, it can be accumulated batch by batch over a whole
dataset (:class:`ConfusionMatrix`) and the metrics computed once at the end: this gives the
dataset-level IoU, not an average of per-image IoUs.
"""
from __future__ import annotations

import numpy as np

from .core import to_numpy

__all__ = [
    "confusion_matrix", "pixel_accuracy", "iou_per_class", "mean_iou", "dice_per_class",
    "mean_dice", "ConfusionMatrix",
]


def _as_int_array(x, name: str) -> np.ndarray:
    """NumPy int64 copy of a NumPy array or torch tensor of class indices."""
    x = to_numpy(x)  # torch tensors (any device) too
    if x.dtype == bool or not np.issubdtype(x.dtype, np.integer):
        hint = (" It looks like scores or probabilities: take the class with `.argmax(dim=1)` "
                "(torch) or `.argmax(axis=1)` (NumPy) first." if np.issubdtype(x.dtype, np.floating) else "")
        raise TypeError(f"{name} must hold integer class indices; got dtype {x.dtype}.{hint}")
    return x.astype(np.int64, copy=False)


def confusion_matrix(pred, target, num_classes: int, ignore_index: int | None = 255) -> np.ndarray:
    """Count (ground truth, prediction) pairs over all pixels.

    pred, target: integer class indices of the same shape, any shape, e.g. (H, W) or (N, H, W);
        NumPy arrays or torch tensors (any device). ``pred`` is the *label map* (after argmax),
        not the network's (N, C, H, W) scores.
    num_classes: C. Valid labels are 0 .. C-1.
    ignore_index: pixels whose *target* equals it are skipped (VOC void = 255); None skips nothing.

    Returns a (C, C) int64 NumPy array, rows = ground truth, columns = prediction.
    Raises ValueError for mismatched shapes or labels outside 0 .. C-1 (other than ignore_index
    in the target), TypeError for non-integer inputs.
    """
    if int(num_classes) != num_classes or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer; got {num_classes!r}.")
    num_classes = int(num_classes)
    p = _as_int_array(pred, "pred")
    t = _as_int_array(target, "target")
    if p.shape != t.shape:
        hint = ""
        if p.ndim == t.ndim + 1:
            hint = " pred has one axis more: did you pass the (N, C, H, W) scores instead of their argmax over C?"
        raise ValueError(f"pred and target must have the same shape; got pred {p.shape} and target {t.shape}.{hint}")
    p, t = p.ravel(), t.ravel()
    if ignore_index is not None:
        keep = t != ignore_index
        p, t = p[keep], t[keep]
    for arr, name in ((t, "target"), (p, "pred")):
        if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
            bad = np.unique(arr[(arr < 0) | (arr >= num_classes)])[:5].tolist()
            extra = f" (ignore_index={ignore_index} is skipped in the target only)" if ignore_index is not None else ""
            raise ValueError(f"{name} has labels {bad} outside 0..{num_classes - 1}{extra}; "
                             f"check num_classes and the mask encoding.")
    counts = np.bincount(t * num_classes + p, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def _check_cm(cm) -> np.ndarray:
    cm = np.asarray(cm.cm if isinstance(cm, ConfusionMatrix) else cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"expected a square (C, C) confusion matrix; got shape {cm.shape}.")
    if (cm < 0).any():
        raise ValueError("a confusion matrix holds counts; found negative entries.")
    return cm.astype(np.float64)


def _safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def pixel_accuracy(cm) -> float:
    """Fraction of counted (non-void) pixels whose prediction equals the ground truth: trace / sum.

    cm: (C, C) confusion matrix (or a :class:`ConfusionMatrix`). Returns a float in [0, 1];
    NaN if the matrix is empty (no pixel counted).
    """
    cm = _check_cm(cm)
    total = cm.sum()
    return float(np.trace(cm) / total) if total > 0 else float("nan")


def iou_per_class(cm) -> np.ndarray:
    """Intersection over union (Jaccard index) of each class: TP / (TP + FP + FN).

    Returns a (C,) float64 array in [0, 1]; NaN for a class that appears neither in the
    ground truth nor in the prediction (its IoU is undefined, not 0 or 1).
    """
    cm = _check_cm(cm)
    tp = np.diag(cm)
    return _safe_divide(tp, cm.sum(axis=1) + cm.sum(axis=0) - tp)


def mean_iou(cm) -> float:
    """Mean of :func:`iou_per_class` over the classes where it is defined (NaN ones skipped).

    Returns a float in [0, 1]; NaN if no class is defined at all.
    """
    iou = iou_per_class(cm)
    return float(np.mean(iou[~np.isnan(iou)])) if (~np.isnan(iou)).any() else float("nan")


def dice_per_class(cm) -> np.ndarray:
    """Dice coefficient (F1 score) of each class: 2 TP / (2 TP + FP + FN) = 2|A∩B| / (|A| + |B|).

    Returns a (C,) float64 array in [0, 1]; NaN for a class absent from both ground truth and
    prediction. Per class, Dice = 2 IoU / (1 + IoU).
    """
    cm = _check_cm(cm)
    tp = np.diag(cm)
    return _safe_divide(2 * tp, cm.sum(axis=1) + cm.sum(axis=0))


def mean_dice(cm) -> float:
    """Mean of :func:`dice_per_class` over the classes where it is defined (NaN ones skipped)."""
    dice = dice_per_class(cm)
    return float(np.mean(dice[~np.isnan(dice)])) if (~np.isnan(dice)).any() else float("nan")


class ConfusionMatrix:
    """Streaming confusion matrix for evaluation loops.

    Example::

        meter = ConfusionMatrix(num_classes=21)          # ignores 255 by default
        for images, masks in loader:
            meter.update(model(images).argmax(dim=1), masks)
        print(meter.mean_iou(), meter.iou_per_class())

    ``update`` takes the same inputs as :func:`confusion_matrix` (label maps, not scores) and adds
    their counts; ``cm`` is the (C, C) int64 total so far; ``reset`` sets it back to zero.
    """

    def __init__(self, num_classes: int, ignore_index: int | None = 255) -> None:
        if int(num_classes) != num_classes or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer; got {num_classes!r}.")
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self._cm = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    @property
    def cm(self) -> np.ndarray:
        """The accumulated (C, C) int64 matrix (a copy; rows = ground truth, columns = prediction)."""
        return self._cm.copy()

    def update(self, pred, target) -> "ConfusionMatrix":
        """Add the counts of one batch; returns self so calls can be chained."""
        self._cm += confusion_matrix(pred, target, self.num_classes, self.ignore_index)
        return self

    def reset(self) -> None:
        """Forget everything counted so far."""
        self._cm[:] = 0

    @property
    def total(self) -> int:
        """Number of (non-void) pixels counted so far."""
        return int(self._cm.sum())

    def pixel_accuracy(self) -> float:
        return pixel_accuracy(self._cm)

    def iou_per_class(self) -> np.ndarray:
        return iou_per_class(self._cm)

    def mean_iou(self) -> float:
        return mean_iou(self._cm)

    def dice_per_class(self) -> np.ndarray:
        return dice_per_class(self._cm)

    def mean_dice(self) -> float:
        return mean_dice(self._cm)

    def compute(self) -> dict:
        """All metrics at once: pixel_accuracy, mean_iou, mean_dice (floats), iou, dice ((C,) arrays)."""
        return {"pixel_accuracy": self.pixel_accuracy(), "mean_iou": self.mean_iou(),
                "mean_dice": self.mean_dice(), "iou": self.iou_per_class(), "dice": self.dice_per_class()}

    def __repr__(self) -> str:
        return f"ConfusionMatrix(num_classes={self.num_classes}, ignore_index={self.ignore_index}, pixels={self.total})"
