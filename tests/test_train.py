"""course_utils.train on a tiny model and a tiny synthetic dataset (runs in a few seconds on a CPU)."""
import math

import matplotlib
import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix as sk_confusion_matrix
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from course_utils import train

C = 3  # classes in the toy problem


def toy_data(n=32, size=8, seed=0, void=True):
    """Class = which of the 3 channels is brightest; a few void pixels. Learnable by a 1x1 conv."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, size, size, generator=g)
    y = x.argmax(dim=1)
    if void:
        y[:, 0, :] = 255
    return x, y


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return nn.Conv2d(3, C, kernel_size=1)


def loaders(batch_size=8):
    xtr, ytr = toy_data(32, seed=0)
    xva, yva = toy_data(16, seed=1)
    return (DataLoader(TensorDataset(xtr, ytr), batch_size=batch_size, shuffle=True),
            DataLoader(TensorDataset(xva, yva), batch_size=batch_size))


def test_fit_learns_the_toy_task_and_logs_every_epoch(capsys):
    tr, va = loaders()
    model = tiny_model()
    before = train.evaluate(model, va, num_classes=C)
    hist = train.fit(model, tr, va, epochs=6, num_classes=C,
                     optimizer=torch.optim.Adam(model.parameters(), lr=0.05), progress=False)
    after = train.evaluate(model, va, num_classes=C)
    assert sorted(hist) == sorted(prefix + key for prefix in ("train_", "val_") for key in train.METRIC_KEYS)
    for key in hist:
        assert len(hist[key]) == 6, key
    assert hist["train_loss"][-1] < hist["train_loss"][0]
    assert after["loss"] < before["loss"] and after["mean_iou"] > 0.8
    assert hist["val_mean_iou"][hist.best_epoch - 1] == pytest.approx(after["mean_iou"])  # one name, one number
    assert len(hist.epoch_seconds) == 6 and all(v > 0 for v in hist.img_per_s)
    assert len(hist.val_seconds) == 6 and all(v > 0 for v in hist.val_seconds)
    out = capsys.readouterr()
    assert out.out.count("epoch ") == 6 and "val_mean_iou" in out.out
    assert out.err == ""  # progress=False: no bar


def test_history_plots_with_viz():
    matplotlib.use("Agg")
    from course_utils import viz

    tr, va = loaders()
    hist = train.fit(tiny_model(), tr, va, epochs=2, num_classes=C, progress=False, verbose=False)
    fig = viz.plot_history(hist)
    assert len(fig.axes) == 4  # loss, pixel_accuracy, mean_iou, mean_dice


def test_evaluate_matches_a_reference_confusion_matrix():
    xva, yva = toy_data(16, seed=1)
    model = tiny_model(seed=3)
    res = train.evaluate(model, DataLoader(TensorDataset(xva, yva), batch_size=5), num_classes=C)
    with torch.no_grad():
        logits = model(xva)
    pred = logits.argmax(1).numpy().ravel()
    truth = yva.numpy().ravel()
    keep = truth != 255
    ref = sk_confusion_matrix(truth[keep], pred[keep], labels=list(range(C)))
    np.testing.assert_array_equal(res["cm"], ref)
    assert res["pixel_accuracy"] == pytest.approx(np.trace(ref) / ref.sum())
    ref_loss = nn.functional.cross_entropy(logits, yva, ignore_index=255).item()
    assert res["loss"] == pytest.approx(ref_loss, rel=1e-5)  # pixel-weighted, not batch-weighted
    assert res["images"] == 16 and res["iou"].shape == (C,)


def test_evaluate_restores_train_mode_and_rejects_empty_loader():
    model = nn.Sequential(nn.Conv2d(3, C, 1), nn.Dropout(0.5))
    model.train()
    train.evaluate(model, DataLoader(TensorDataset(*toy_data(4)), batch_size=2), num_classes=C)
    assert model.training
    with pytest.raises(ValueError, match="empty"):
        train.evaluate(model, [], num_classes=C)


def test_best_checkpoint_is_kept_in_memory_and_on_disk(tmp_path):
    tr, va = loaders()
    model = tiny_model()
    path = tmp_path / "ckpt" / "best.pt"
    hist = train.fit(model, tr, va, epochs=4, num_classes=C, checkpoint_path=path, progress=False,
                     verbose=False, optimizer=torch.optim.SGD(model.parameters(), lr=0.5))
    best = int(np.nanargmax(hist["val_mean_iou"])) + 1
    assert hist.best_epoch == best and hist.best_score == pytest.approx(max(hist["val_mean_iou"]))
    saved = torch.load(path)
    for k, v in model.state_dict().items():  # restore_best: the model holds the best weights
        assert torch.equal(v, hist.best_state[k]) and torch.equal(v, saved[k])


def test_monitor_on_loss_picks_the_minimum_and_bad_monitor_is_explained():
    tr, va = loaders()
    hist = train.fit(tiny_model(), tr, va, epochs=3, num_classes=C, monitor="val_loss",
                     progress=False, verbose=False)
    assert hist.best_epoch == int(np.argmin(hist["val_loss"])) + 1
    with pytest.raises(ValueError, match="monitor"):
        train.fit(tiny_model(), tr, va, epochs=1, num_classes=C, monitor="val_f1", progress=False, verbose=False)


def test_without_validation_the_train_metric_is_monitored():
    tr, _ = loaders()
    hist = train.fit(tiny_model(), tr, None, epochs=2, num_classes=C, progress=False, verbose=False)
    assert hist.monitor == "train_mean_iou" and "val_loss" not in hist and hist.val_seconds == []


def test_nan_loss_stops_training_with_a_clear_error():
    tr, va = loaders()

    def bad_loss(logits, masks):
        return logits.sum() * float("nan")

    with pytest.raises(FloatingPointError, match="learning rate"):
        train.fit(tiny_model(), tr, va, epochs=1, num_classes=C, loss_fn=bad_loss, progress=False, verbose=False)


def test_malformed_batches_are_explained():
    x, y = toy_data(4)
    model = tiny_model()
    cases = [
        ((x, y.float()), TypeError, "integer"),
        ((x, torch.full_like(y, 7)), ValueError, r"\[7\]"),
        ((x, y[:, :4]), ValueError, "masks must be"),
        (((x * 255).byte(), y), TypeError, "float"),
        ((x, y, y), ValueError, "each batch"),
    ]
    for batch, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            train.fit(model, [batch], epochs=1, num_classes=C, progress=False, verbose=False)
    with pytest.raises(ValueError, match="one score map per input pixel"):
        train.fit(nn.Conv2d(3, C, 2, stride=2), [(x, y)], epochs=1, num_classes=C, progress=False, verbose=False)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        train.fit(nn.Conv2d(3, 5, 1), [(x, y)], epochs=1, num_classes=C, progress=False, verbose=False)


def test_dict_batches_and_all_void_batches():
    x, y = toy_data(4)
    void = torch.full_like(y, 255)
    batches = [{"image": x, "mask": y}, {"image": x, "mask": void}]
    hist = train.fit(tiny_model(), batches, batches, epochs=1, num_classes=C, progress=False, verbose=False)
    assert math.isfinite(hist["train_loss"][0]) and math.isfinite(hist["val_loss"][0])


def test_amp_is_cuda_only():
    x, y = toy_data(4)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            train.fit(tiny_model(), [(x, y)], epochs=1, num_classes=C, amp=True, progress=False, verbose=False)
    with pytest.raises(ValueError, match="non-negative"):
        train.fit(tiny_model(), [(x, y)], epochs=-1, num_classes=C)


def test_tqdm_is_quiet_when_disabled_by_environment(monkeypatch, capsys):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    x, y = toy_data(4)
    train.fit(tiny_model(), [(x, y)], epochs=1, num_classes=C, verbose=False)
    assert capsys.readouterr().err == ""
    # in Jupyter tqdm.auto draws a widget whatever the terminal: the variable itself must switch it off
    assert train._progress([1], 1, "x", None).disable
    monkeypatch.setenv("TQDM_DISABLE", "0")
    assert not train._progress([1], 1, "x", True).disable


class PairDataset(Dataset):
    def __init__(self):
        self.x, self.y = toy_data(6)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def test_show_predictions_and_predict():
    matplotlib.use("Agg")
    model = tiny_model()
    fig = train.show_predictions(model, PairDataset(), n=3, mean=None, std=None)
    assert len(fig.axes) == 9 and fig.axes[2].get_title() == "prediction"
    fig = train.show_predictions(model, DataLoader(PairDataset(), batch_size=2), n=5)
    assert len(fig.axes) == 15
    pred = train.predict(model, toy_data(2)[0])
    assert pred.shape == (2, 8, 8) and pred.dtype == torch.int64
    with pytest.raises(ValueError):
        train.show_predictions(model, PairDataset(), n=0)


def test_measure_throughput_leaves_weights_untouched():
    model = tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ips = train.measure_throughput(model, batch_size=4, image_size=16, num_classes=C, steps=2)
    assert ips > 0
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_evaluate_and_predict_keep_a_frozen_backbone_in_eval_mode():
    # linear-probe style: the model trains, its BatchNorm backbone stays in eval mode (notebook 06);
    # evaluate/predict must not switch that BatchNorm back to batch statistics
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Conv2d(4, C, 1)).train()
    model[1].eval()
    _, va = loaders()
    train.evaluate(model, va, num_classes=C)
    assert model.training and not model[1].training
    train.predict(model, torch.randn(2, 3, 8, 8))
    assert model.training and not model[1].training


# ---- speed contract: nothing inside an epoch waits for the device --------------------------------

_READS = {"item", "__bool__", "tolist", "numpy", "cpu", "__float__", "__int__", "__index__", "unique",
          "_unique2", "nonzero"}


class _CountReads(torch.overrides.TorchFunctionMode):
    """Counts the tensor calls that copy a value back to the host (a GPU sync on CUDA)."""

    def __init__(self):
        super().__init__()
        self.reads = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in _READS:
            self.reads += 1
        return func(*args, **(kwargs or {}))


def _reads_during_fit(n_batches):
    x, y = toy_data(4 * n_batches)
    batches = [(x[i:i + 4], y[i:i + 4]) for i in range(0, len(x), 4)]
    model = tiny_model()
    with _CountReads() as counter:  # SGD: its step reads nothing back (Adam reads its CPU step counter)
        train.fit(model, batches, batches, epochs=2, num_classes=C, progress=False, verbose=False,
                  optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    return counter.reads


def test_fit_reads_back_a_fixed_number_of_values_per_epoch_whatever_the_batch_count():
    few, many = _reads_during_fit(2), _reads_during_fit(7)
    assert few == many, f"{few} reads for 2 batches, {many} for 7: something waits for the device per batch"


def test_confusion_add_matches_the_metrics_module():
    from course_utils import metrics

    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 5, (3, 7, 9), generator=g)
    target[:, :2] = 255
    pred = torch.randint(0, 5, (3, 7, 9), generator=g)
    cm_flat = torch.zeros(26, dtype=torch.long)
    train._confusion_add(cm_flat, pred, target, 5, 255)
    train._confusion_add(cm_flat, pred[:1], target[:1], 5, 255)
    ref = metrics.confusion_matrix(pred, target, 5) + metrics.confusion_matrix(pred[:1], target[:1], 5)
    np.testing.assert_array_equal(cm_flat[:-1].reshape(5, 5).numpy(), ref)
    assert int(cm_flat[-1]) == int((target == 255).sum() + (target[:1] == 255).sum())  # void bin


def test_all_void_batch_is_left_out_of_the_training_loss():
    x, y = toy_data(8)
    model = tiny_model()
    with torch.no_grad():
        expected = nn.functional.cross_entropy(model(x[:4]), y[:4], ignore_index=255).item()
    batches = [(x[:4], y[:4]), (x[4:], torch.full_like(y[4:], 255))]
    hist = train.fit(model, batches, None, epochs=1, num_classes=C, progress=False, verbose=False,
                     optimizer=torch.optim.SGD(model.parameters(), lr=0.0))
    assert hist["train_loss"][0] == pytest.approx(expected, rel=1e-6)


def test_nan_loss_is_reported_with_its_epoch():
    tr, _ = loaders()
    calls = []

    def loss_nan_in_epoch_2(logits, masks):
        calls.append(1)
        loss = nn.functional.cross_entropy(logits, masks, ignore_index=255)
        return loss * float("nan") if len(calls) > len(tr) else loss

    with pytest.raises(FloatingPointError, match="epoch 2"):
        train.fit(tiny_model(), tr, None, epochs=3, num_classes=C, loss_fn=loss_nan_in_epoch_2, progress=False,
                  verbose=False)


def test_device_loader_moves_finishes_and_feeds_fit_and_show_predictions():
    matplotlib.use("Agg")
    x, y = toy_data(6)
    raw = DataLoader(TensorDataset((x.clamp(-2, 2) * 60 + 128).byte().permute(0, 2, 3, 1), y.byte()), batch_size=4)

    def finish(images, masks):  # uint8 (N, H, W, 3) -> float (N, 3, H, W); masks to int64
        return (images.permute(0, 3, 1, 2).float() - 128) / 60, masks.long()

    loader = train.DeviceLoader(raw, "cpu", finish)
    assert len(loader) == 2 and loader.dataset is raw.dataset and "cpu" in repr(loader)
    batches = list(loader)
    assert [tuple(b[0].shape) for b in batches] == [(4, 3, 8, 8), (2, 3, 8, 8)]
    assert batches[0][0].dtype == torch.float32 and batches[0][1].dtype == torch.int64
    assert list(train.DeviceLoader(raw, "cpu"))[0][0].dtype == torch.uint8  # no transform: as is
    hist = train.fit(tiny_model(), loader, loader, epochs=1, num_classes=C, progress=False, verbose=False)
    assert math.isfinite(hist["val_loss"][0])
    fig = train.show_predictions(tiny_model(), loader, n=3, mean=None, std=None)
    assert len(fig.axes) == 9


def test_measure_throughput_amp_choice():
    model = tiny_model()
    assert train.measure_throughput(model, batch_size=2, image_size=8, num_classes=C, steps=1, amp=None) > 0
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            train.measure_throughput(model, batch_size=2, image_size=8, num_classes=C, steps=1, amp=True)
