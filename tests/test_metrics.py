import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from course_utils import metrics as M

C = 5


def random_maps(seed: int, shape=(3, 17, 23), num_classes=C, void_fraction=0.2):
    """Random prediction and ground truth with some void (255) pixels in the ground truth."""
    rng = np.random.default_rng(seed)
    target = rng.integers(0, num_classes, size=shape)
    pred = np.where(rng.random(shape) < 0.5, target, rng.integers(0, num_classes, size=shape))
    target[rng.random(shape) < void_fraction] = 255
    return pred, target


def sklearn_view(pred, target):
    keep = target != 255
    return target[keep], pred[keep]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_confusion_matrix_matches_sklearn(seed):
    pred, target = random_maps(seed)
    y_true, y_pred = sklearn_view(pred, target)
    cm = M.confusion_matrix(pred, target, C)
    assert cm.dtype == np.int64 and cm.shape == (C, C)
    np.testing.assert_array_equal(cm, skm.confusion_matrix(y_true, y_pred, labels=range(C)))
    assert cm.sum() == (target != 255).sum()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_sklearn(seed):
    pred, target = random_maps(seed)
    y_true, y_pred = sklearn_view(pred, target)
    cm = M.confusion_matrix(pred, target, C)
    assert M.pixel_accuracy(cm) == pytest.approx(skm.accuracy_score(y_true, y_pred))
    iou = skm.jaccard_score(y_true, y_pred, labels=range(C), average=None)
    np.testing.assert_allclose(M.iou_per_class(cm), iou)
    assert M.mean_iou(cm) == pytest.approx(iou.mean())
    dice = skm.f1_score(y_true, y_pred, labels=range(C), average=None)
    np.testing.assert_allclose(M.dice_per_class(cm), dice)
    assert M.mean_dice(cm) == pytest.approx(dice.mean())
    # the identity Dice = 2 IoU / (1 + IoU), class by class
    np.testing.assert_allclose(M.dice_per_class(cm), 2 * iou / (1 + iou))


def test_torch_and_numpy_give_the_same_matrix():
    pred, target = random_maps(3)
    a = M.confusion_matrix(pred, target, C)
    b = M.confusion_matrix(torch.from_numpy(pred), torch.from_numpy(target).to(torch.uint8), C)
    np.testing.assert_array_equal(a, b)


def test_rows_are_ground_truth_columns_are_prediction():
    target = np.array([0, 0, 0, 1])
    pred = np.array([1, 1, 0, 1])
    cm = M.confusion_matrix(pred, target, 2)
    np.testing.assert_array_equal(cm, [[1, 2], [0, 1]])


def test_absent_class_is_nan_and_skipped_in_the_mean():
    target = np.array([[0, 0], [1, 255]])
    pred = np.array([[0, 1], [1, 2]])  # class 2 predicted only on a void pixel, class 3 nowhere
    cm = M.confusion_matrix(pred, target, 4)
    iou = M.iou_per_class(cm)
    np.testing.assert_allclose(iou[:2], [1 / 2, 1 / 2])
    assert np.isnan(iou[2]) and np.isnan(iou[3])
    assert M.mean_iou(cm) == pytest.approx(0.5)
    assert np.isnan(M.dice_per_class(cm)[3])
    # a class only predicted (class 2) or only in the ground truth (class 0) has IoU 0, not NaN
    cm2 = M.confusion_matrix(np.array([2]), np.array([0]), 3)
    np.testing.assert_array_equal(M.iou_per_class(cm2), [0.0, np.nan, 0.0])


def test_empty_matrix_gives_nan_without_warnings():
    cm = np.zeros((3, 3), dtype=np.int64)
    with np.errstate(all="raise"):
        assert np.isnan(M.pixel_accuracy(cm))
        assert np.isnan(M.mean_iou(cm))
        assert np.isnan(M.mean_dice(cm))
        assert np.isnan(M.iou_per_class(cm)).all()


def test_ignore_index_none_counts_everything():
    cm = M.confusion_matrix(np.array([0, 1, 2]), np.array([0, 1, 2]), 3, ignore_index=None)
    assert cm.trace() == 3
    with pytest.raises(ValueError, match="outside 0..2"):
        M.confusion_matrix(np.array([0]), np.array([255]), 3, ignore_index=None)


def test_streaming_equals_one_big_matrix():
    meter = M.ConfusionMatrix(C)
    preds, targets = zip(*(random_maps(s, shape=(2, 8, 8)) for s in range(4)))
    for p, t in zip(preds, targets):
        meter.update(torch.from_numpy(p), torch.from_numpy(t))
    whole = M.confusion_matrix(np.concatenate(preds), np.concatenate(targets), C)
    np.testing.assert_array_equal(meter.cm, whole)
    assert meter.total == whole.sum()
    assert meter.mean_iou() == pytest.approx(M.mean_iou(whole))
    out = meter.compute()
    assert set(out) == {"pixel_accuracy", "mean_iou", "mean_dice", "iou", "dice"}
    assert M.mean_iou(meter) == pytest.approx(out["mean_iou"])  # functions accept the meter too
    snapshot = meter.cm
    snapshot[0, 0] += 100  # .cm is a copy
    np.testing.assert_array_equal(meter.cm, whole)
    meter.reset()
    assert meter.total == 0 and np.isnan(meter.mean_iou())


def test_bad_inputs_get_clear_errors():
    pred, target = random_maps(0)
    with pytest.raises(ValueError, match="same shape"):
        M.confusion_matrix(pred[:, :-1], target, C)
    logits = torch.randn(2, C, 4, 4)
    with pytest.raises(TypeError, match="argmax"):
        M.confusion_matrix(logits, torch.zeros(2, 4, 4, dtype=torch.long), C)
    with pytest.raises(ValueError, match="argmax"):
        M.confusion_matrix(torch.zeros(2, C, 4, 4, dtype=torch.long), torch.zeros(2, 4, 4, dtype=torch.long), C)
    with pytest.raises(ValueError, match=r"target has labels \[7\]"):
        M.confusion_matrix(np.array([0, 1]), np.array([0, 7]), C)
    with pytest.raises(ValueError, match=r"pred has labels \[-1\]"):
        M.confusion_matrix(np.array([0, -1]), np.array([0, 1]), C)
    with pytest.raises(ValueError, match="positive integer"):
        M.confusion_matrix(pred, target, 0)
    with pytest.raises(ValueError, match="square"):
        M.iou_per_class(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="positive integer"):
        M.ConfusionMatrix(2.5)
