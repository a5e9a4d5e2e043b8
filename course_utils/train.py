"""A training loop for semantic segmentation, written once so notebooks can focus on the model.

The notebooks first write a training step by hand (forward, loss, ``backward``, ``step``); this
module is the tidy version of the same loop with the bookkeeping a student should not retype:

- :func:`fit` trains for some epochs and after each one reports loss, pixel accuracy and mIoU
  (from :mod:`course_utils.metrics`) on the training and validation data, keeps the best weights,
  and returns a :class:`History` that :func:`course_utils.viz.plot_history` can draw.
- :func:`evaluate` runs a model over a loader and returns every metric plus the confusion matrix.
- :class:`DeviceLoader` moves each batch of a loader to the device and finishes it there (e.g.
  uint8 -> normalised float, colour augmentation): per-batch work a GPU does in microseconds.
- :func:`show_predictions` draws image / ground truth / prediction rows with the VOC palette.
- :func:`measure_throughput` times training steps of the model alone and returns images per second.

Batches may be ``(images, masks)`` pairs or dicts with ``"image"`` and ``"mask"`` keys.
Images: float tensors (N, 3, H, W); masks: integer tensors (N, H, W) of class indices, with
255 (VOC "void") ignored by the loss and the metrics. Progress bars come from ``tqdm.auto``:
a bar in Jupyter, plain text in a terminal, nothing when ``TQDM_DISABLE=1`` (CI sets it).
Mixed precision (``torch.autocast``) is used on CUDA only: bfloat16 where the GPU supports it
(compute capability 8.0 and newer, no gradient scaler needed), else float16 with a gradient scaler.

Speed: :func:`fit` and :func:`evaluate` never wait for the GPU inside an epoch. Loss sums and the
confusion matrix are accumulated on the device and read once per epoch; labels are range-checked on
the first batch of each epoch only. So the CPU can prepare the next batch while the GPU still works
on the previous one, and the loop runs close to the model's own speed (:func:`measure_throughput`).
"""
from __future__ import annotations

import copy
import math
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .core import env_flag, eval_mode
from .metrics import dice_per_class, iou_per_class, mean_dice, mean_iou, pixel_accuracy
from .pretrained import IMAGENET_MEAN, IMAGENET_STD
from .viz import colorize_mask
from .voc import IGNORE_INDEX, NUM_CLASSES

__all__ = ["History", "DeviceLoader", "fit", "evaluate", "predict", "show_predictions", "measure_throughput",
           "METRIC_KEYS"]

METRIC_KEYS: tuple[str, ...] = ("loss", "pixel_accuracy", "mean_iou", "mean_dice")
"""The scalar metrics :func:`evaluate` returns under these names; :func:`fit` logs each epoch's value
as ``"train_" + key`` and ``"val_" + key`` (``val_mean_iou`` is the same number as ``evaluate(...)["mean_iou"]``)."""


class History(dict):
    """Per-epoch curves, e.g. ``{"train_loss": [...], "val_loss": [...], "val_mean_iou": [...]}``.

    A plain dict (so ``viz.plot_history(history)`` draws it) with extra attributes:
    ``best_epoch`` (1-based; 0 if none), ``best_score``, ``monitor`` (the key that chose it),
    ``best_state`` (the best ``state_dict``, on the CPU), ``epoch_seconds`` and ``img_per_s``
    (the training pass of each epoch: seconds, images per second) and ``val_seconds`` (each
    epoch's validation pass, empty without a validation loader).
    """

    def __init__(self) -> None:
        super().__init__()
        self.best_epoch: int = 0
        self.best_score: float = float("nan")
        self.monitor: str = ""
        self.best_state: dict | None = None
        self.epoch_seconds: list[float] = []
        self.img_per_s: list[float] = []
        self.val_seconds: list[float] = []

    def log(self, key: str, value: float) -> None:
        self.setdefault(key, []).append(float(value))


def _split_batch(batch) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(batch, dict):
        if "image" not in batch or "mask" not in batch:
            raise ValueError(f"a dict batch needs 'image' and 'mask' keys; got {sorted(batch)}.")
        return batch["image"], batch["mask"]
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    raise ValueError("each batch must be (images, masks) or {'image': ..., 'mask': ...}; "
                     f"got {type(batch).__name__}" + (f" of length {len(batch)}" if hasattr(batch, "__len__") else ""))


def _check_batch(images: torch.Tensor, masks: torch.Tensor, num_classes: int, ignore_index: int,
                 values: bool = True) -> None:
    """Catch the common data bugs early, with a message instead of a CUDA assert.

    Shapes and dtypes are checked on every batch (free: no data is read). ``values=True`` also
    checks the label values, which reads the masks and so waits for the device: fit and evaluate
    do it on the first batch of each epoch only."""
    if not torch.is_tensor(images) or not torch.is_tensor(masks):
        raise TypeError("images and masks must be torch tensors; use ToTensorV2() in the transform "
                        f"(got {type(images).__name__} and {type(masks).__name__}).")
    if images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W); got shape {tuple(images.shape)}.")
    if not images.is_floating_point():
        raise TypeError(f"images must be float tensors (normalise them in the transform); got {images.dtype}.")
    if masks.ndim != 3 or masks.shape[0] != images.shape[0] or masks.shape[1:] != images.shape[2:]:
        raise ValueError(f"masks must be (N, H, W) matching images {tuple(images.shape)}; got {tuple(masks.shape)}.")
    if masks.is_floating_point():
        raise TypeError(f"masks must hold integer class indices; got {masks.dtype}.")
    if not values:
        return
    values = torch.unique(masks)
    bad = values[(values != ignore_index) & ((values < 0) | (values >= num_classes))]
    if bad.numel():
        raise ValueError(f"masks hold labels {bad[:5].tolist()} outside 0..{num_classes - 1} "
                         f"(and {ignore_index} = void); check num_classes and how masks are decoded.")


def _check_logits(logits: torch.Tensor, masks: torch.Tensor, num_classes: int) -> None:
    if logits.ndim != 4 or logits.shape[1] != num_classes:
        raise ValueError(f"the model must return (N, {num_classes}, H, W) class scores; got {tuple(logits.shape)}.")
    if logits.shape[2:] != masks.shape[1:]:
        raise ValueError(f"the model's output is {tuple(logits.shape[2:])} but the masks are {tuple(masks.shape[1:])}; "
                         "a segmentation net must return one score map per input pixel (check the decoder's upsampling).")


def _resolve_device(model: nn.Module, device) -> torch.device:
    if device is not None:
        return torch.device(device)
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def _use_amp(amp: bool | None, device: torch.device) -> bool:
    if amp is None:
        return device.type == "cuda"
    if amp and device.type != "cuda":
        raise ValueError(f"mixed precision (amp=True) is used on CUDA only; the device is {device}. "
                         "Leave amp=None to choose automatically.")
    return bool(amp)


def _progress(iterable, total: int | None, desc: str, progress: bool | None):
    # TQDM_DISABLE only sets tqdm's *default*; an explicit disable= overrides it, so read it here.
    # progress=None: on unless TQDM_DISABLE=1 (a non-terminal outside Jupyter stays quiet anyway).
    if progress is None:
        disable = True if env_flag("TQDM_DISABLE") else None
    else:
        disable = not progress
    return tqdm(iterable, total=total, desc=desc, leave=False, disable=disable)


def _len(loader) -> int | None:
    try:
        return len(loader)
    except TypeError:
        return None


def _amp_dtype(device: torch.device) -> torch.dtype:
    """bfloat16 on GPUs that compute in it natively (compute capability 8.0+: A100, L4, H100...; no
    gradient scaler needed, so no wait for the GPU per step), float16 on older ones (Colab's T4)."""
    if device.type == "cuda" and torch.cuda.get_device_capability(device) >= (8, 0):
        return torch.bfloat16
    return torch.float16


def _nan_error(where: str, epoch: int) -> FloatingPointError:
    return FloatingPointError(
        f"the loss became NaN or infinite ({where}, epoch {epoch}). Training cannot go on. "
        "Usual causes: a learning rate too high (try 10x lower), un-normalised inputs (divide by 255 and "
        "standardise), or a loss function that returns NaN for a batch of only void pixels.")


def _confusion_add(cm_flat: torch.Tensor, pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                   ignore_index: int) -> None:
    """Add one batch's (truth, prediction) pairs to ``cm_flat`` in place, on the device, without a host sync.

    cm_flat: (C*C + 1,) int64 counts; index ``t*C + p`` counts truth t predicted as p (the layout of
    :func:`course_utils.metrics.confusion_matrix`, flattened), the last bin collects void pixels.
    pred, target: integer label maps of the same shape. (``torch.bincount`` would read the largest
    label back to the CPU first; ``index_add_`` does not.)
    """
    idx = torch.where(target != ignore_index, target * num_classes + pred, num_classes * num_classes).reshape(-1)
    cm_flat.index_add_(0, idx, torch.ones_like(idx))


def _cm_metrics(cm_flat: torch.Tensor, num_classes: int) -> tuple[np.ndarray, dict]:
    """The (C, C) int64 NumPy matrix out of the device counts (one transfer) and its metrics."""
    cm = cm_flat[:-1].reshape(num_classes, num_classes).cpu().numpy()
    return cm, {"pixel_accuracy": pixel_accuracy(cm), "mean_iou": mean_iou(cm), "mean_dice": mean_dice(cm),
                "iou": iou_per_class(cm), "dice": dice_per_class(cm)}


class _Postfix:
    """Shows the running mean loss on a progress bar at most once a second (each update reads a
    number back from the device, so it is kept rare)."""

    def __init__(self, bar) -> None:
        self.bar = bar if hasattr(bar, "set_postfix") and not getattr(bar, "disable", True) else None
        self.last = time.perf_counter()

    def __call__(self, total: torch.Tensor, count: torch.Tensor) -> None:
        if self.bar is not None and time.perf_counter() - self.last > 1.0:
            self.bar.set_postfix(loss=f"{float(total / count.clamp(min=1)):.3f}")
            self.last = time.perf_counter()


class DeviceLoader:
    """Wrap a loader so that every batch arrives on ``device``, finished there by ``transform``.

    ``for images, masks in DeviceLoader(loader, "cuda", transform):`` moves each ``(images, masks)``
    batch (or ``{"image", "mask"}`` dict) of ``loader`` to ``device`` (``non_blocking=True``: with a
    DataLoader built with ``pin_memory=True`` the copy overlaps the GPU's work), then yields
    ``transform(images, masks)``, or the pair itself when ``transform`` is None. Typical transform:
    uint8 (N, H, W, 3) -> normalised float (N, 3, H, W), plus colour augmentation for training; on a
    GPU that costs microseconds per batch, on the CPU it would cost more than the crop itself.

    ``len()`` and ``.dataset`` are the wrapped loader's, so :func:`fit`, :func:`evaluate` and
    :func:`show_predictions` take it like a DataLoader. Iterating it again starts a new epoch.
    """

    def __init__(self, loader: Iterable, device, transform: Callable | None = None) -> None:
        self.loader = loader
        self.device = torch.device(device)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.loader)

    @property
    def dataset(self):
        return getattr(self.loader, "dataset", None)

    def __iter__(self):
        for batch in self.loader:
            images, masks = _split_batch(batch)
            images = images.to(self.device, non_blocking=True)
            masks = masks.to(self.device, non_blocking=True)
            yield self.transform(images, masks) if self.transform is not None else (images, masks)

    def __repr__(self) -> str:
        name = getattr(self.transform, "__name__", type(self.transform).__name__)
        return f"DeviceLoader({len(self)} batches -> {self.device}, transform={name if self.transform else None})"


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, num_classes: int = NUM_CLASSES, device=None,
             loss_fn: Callable | None = None, ignore_index: int = IGNORE_INDEX,
             progress: bool | None = None, amp: bool | None = None) -> dict:
    """Run ``model`` over ``loader`` in eval mode and measure it on the whole dataset.

    Returns a dict: ``loss`` (the loss averaged over all non-void pixels; NaN if every pixel is
    void), ``pixel_accuracy``, ``mean_iou``, ``mean_dice`` (floats),
    ``iou``, ``dice`` ((C,) float arrays, NaN for classes absent from truth and prediction),
    ``cm`` ((C, C) int64 confusion matrix, rows = truth), ``images`` (count) and ``seconds``.
    Metrics are dataset-level (one confusion matrix over all pixels), void pixels skipped.
    Counts and loss are summed on the device and read once at the end (no wait per batch).
    """
    device = _resolve_device(model, device)
    use_amp = _use_amp(amp, device)
    amp_dtype = _amp_dtype(device)
    loss_fn = loss_fn if loss_fn is not None else nn.CrossEntropyLoss(ignore_index=ignore_index)
    cm_flat = torch.zeros(num_classes * num_classes + 1, dtype=torch.long, device=device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    pixels = torch.zeros((), dtype=torch.long, device=device)
    count = 0
    start = time.perf_counter()
    with eval_mode(model):
        for batch in _progress(loader, _len(loader), "eval", progress):
            images, masks = _split_batch(batch)
            _check_batch(images, masks, num_classes, ignore_index, values=count == 0)
            images, masks = images.to(device, non_blocking=True), masks.to(device, non_blocking=True).long()
            with torch.autocast(device_type=device.type, dtype=amp_dtype, enabled=use_amp):
                logits = model(images)
            _check_logits(logits, masks, num_classes)
            valid = (masks != ignore_index).sum()
            loss = loss_fn(logits.float(), masks).double()
            # pixel-weighted; a batch of only void pixels (CE = NaN there) adds nothing
            loss_sum += torch.where(valid > 0, loss * valid, torch.zeros_like(loss))
            pixels += valid
            count += images.shape[0]
            _confusion_add(cm_flat, logits.argmax(dim=1), masks, num_classes, ignore_index)
    if count == 0:
        raise ValueError("evaluate got an empty loader; check the dataset split and batch size.")
    cm, out = _cm_metrics(cm_flat, num_classes)
    n_pixels = int(pixels)
    out.update(loss=float(loss_sum) / n_pixels if n_pixels else float("nan"), cm=cm, images=count,
               seconds=time.perf_counter() - start)
    return out


def fit(model: nn.Module, train_loader: Iterable, val_loader: Iterable | None = None, epochs: int = 10,
        optimizer: torch.optim.Optimizer | None = None, loss_fn: Callable | None = None, device=None,
        num_classes: int = NUM_CLASSES, ignore_index: int = IGNORE_INDEX, scheduler=None,
        monitor: str = "val_mean_iou", checkpoint_path: str | Path | None = None, restore_best: bool = True,
        amp: bool | None = None, progress: bool | None = None, verbose: bool = True) -> History:
    """Train ``model`` for ``epochs`` epochs and return the per-epoch :class:`History`.

    Each epoch: one pass over ``train_loader`` (forward, loss, backward, optimizer step, with
    ``torch.autocast`` on CUDA when ``amp`` is None or True), then
    :func:`evaluate` on ``val_loader``. Logged keys: ``train_loss``, ``train_pixel_accuracy``,
    ``train_mean_iou``, ``train_mean_dice`` (from the predictions made while training, so with
    dropout/augmentation on) and ``val_loss``, ``val_pixel_accuracy``, ``val_mean_iou``,
    ``val_mean_dice`` when a validation loader is given: ``"train_"``/``"val_"`` + the names that
    :func:`evaluate` returns (:data:`METRIC_KEYS`). ``history.img_per_s`` holds each epoch's
    training images per second (the training pass only, validation excluded).

    optimizer: default ``Adam(lr=1e-3)``. loss_fn: default ``CrossEntropyLoss(ignore_index=255)``;
        it gets ``(logits (N, C, H, W) float, masks (N, H, W) int64)``.
    scheduler: optional; ``scheduler.step()`` is called once per epoch.
    monitor: key that picks the best epoch (``*_loss``: lower is better, others: higher);
        its weights are kept in memory (``history.best_state``), written to ``checkpoint_path`` if
        given, and loaded back into the model at the end when ``restore_best``.
    progress: None = tqdm decides (``TQDM_DISABLE=1`` silences it); verbose prints one line per epoch.

    Nothing inside an epoch waits for the GPU: the loss, its count and the confusion matrix are summed
    on the device and read at the end of the epoch. Consequences: a NaN or infinite loss raises
    FloatingPointError at the end of the epoch in which it happened (not at that batch); a batch
    whose pixels are all void (255) adds no gradient and is left out of ``train_loss``, but the
    optimizer still takes its step (skipping it would need the host to look at the batch).
    Raises ValueError/TypeError for malformed batches (wrong shapes or dtypes on any batch; labels
    outside 0..C-1 other than 255, checked on the first batch of each epoch).
    """
    if epochs < 0 or int(epochs) != epochs:
        raise ValueError(f"epochs must be a non-negative integer; got {epochs!r}.")
    device = _resolve_device(model, device)
    model.to(device)
    use_amp = _use_amp(amp, device)
    amp_dtype = _amp_dtype(device)
    optimizer = optimizer if optimizer is not None else torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = loss_fn if loss_fn is not None else nn.CrossEntropyLoss(ignore_index=ignore_index)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    if val_loader is None and monitor.startswith("val_"):
        monitor = "train_" + monitor[4:]
    lower_is_better = monitor.endswith("loss")
    history = History()
    history.monitor = monitor

    for epoch in range(1, int(epochs) + 1):
        model.train()
        cm_flat = torch.zeros(num_classes * num_classes + 1, dtype=torch.long, device=device)
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        loss_count = torch.zeros((), dtype=torch.long, device=device)
        bad = torch.zeros((), dtype=torch.bool, device=device)
        count = 0
        start = time.perf_counter()
        bar = _progress(train_loader, _len(train_loader), f"epoch {epoch}/{epochs}", progress)
        postfix = _Postfix(bar)
        for batch in bar:
            images, masks = _split_batch(batch)
            _check_batch(images, masks, num_classes, ignore_index, values=count == 0)
            images, masks = images.to(device, non_blocking=True), masks.to(device, non_blocking=True).long()
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device_type=device.type, dtype=amp_dtype, enabled=use_amp):
                logits = model(images)
            _check_logits(logits, masks, num_classes)
            loss = loss_fn(logits.float(), masks)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            n = images.shape[0]
            count += n
            has_pixels = (masks != ignore_index).any()
            value = loss.detach().double()
            bad |= has_pixels & ~torch.isfinite(value)
            loss_sum += torch.where(has_pixels, value * n, torch.zeros_like(value))
            loss_count += has_pixels * n
            _confusion_add(cm_flat, logits.detach().argmax(dim=1), masks, num_classes, ignore_index)
            postfix(loss_sum, loss_count)
        if count == 0:
            raise ValueError("the training loader gave no batches; check the dataset split and batch size.")
        if bool(bad):  # the first read of the epoch: waits for the device to finish its queue
            raise _nan_error("training", epoch)
        seconds = time.perf_counter() - start
        history.epoch_seconds.append(seconds)
        history.img_per_s.append(count / seconds if seconds > 0 else float("inf"))
        _, train_res = _cm_metrics(cm_flat, num_classes)
        n_loss = int(loss_count)
        train_res["loss"] = float(loss_sum) / n_loss if n_loss else float("nan")
        for key in METRIC_KEYS:
            history.log("train_" + key, train_res[key])
        if val_loader is not None:
            res = evaluate(model, val_loader, num_classes, device, loss_fn, ignore_index, progress, amp=use_amp)
            history.val_seconds.append(res["seconds"])
            for key in METRIC_KEYS:
                history.log("val_" + key, res[key])
        if scheduler is not None:
            scheduler.step()
        if monitor not in history:
            raise ValueError(f"monitor={monitor!r} is not a logged key; choose one of {sorted(history)}.")
        score = history[monitor][-1]
        better = (history.best_epoch == 0 or
                  (score < history.best_score if lower_is_better else score > history.best_score))
        if better and not math.isnan(score):
            history.best_epoch, history.best_score = epoch, score
            history.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            if checkpoint_path is not None:
                Path(checkpoint_path).parent.mkdir(parents=True, exist_ok=True)
                torch.save(history.best_state, checkpoint_path)
        if verbose:
            parts = [f"{k} {v[-1]:.3f}" for k, v in history.items()]
            mark = " *" if history.best_epoch == epoch else ""
            print(f"epoch {epoch:2d}/{epochs} | " + " | ".join(parts) + f"{mark}", flush=True)
    if restore_best and history.best_state is not None:
        model.load_state_dict(history.best_state)
    return history


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, device=None) -> torch.Tensor:
    """Label maps for a batch: (N, 3, H, W) float -> (N, H, W) int64 on the CPU (eval mode)."""
    device = _resolve_device(model, device)
    with eval_mode(model):
        return model(images.to(device)).argmax(dim=1).cpu()


def _denormalize(image: torch.Tensor, mean: Sequence[float] | None, std: Sequence[float] | None) -> np.ndarray:
    img = image.detach().cpu().float()
    if mean is not None and std is not None:
        img = img * torch.tensor(std).view(-1, 1, 1) + torch.tensor(mean).view(-1, 1, 1)
    return img.clamp(0, 1).permute(1, 2, 0).numpy()


def show_predictions(model: nn.Module, data, n: int = 4, device=None,
                     mean: Sequence[float] | None = IMAGENET_MEAN, std: Sequence[float] | None = IMAGENET_STD,
                     size: float = 2.0, title: str | None = None):
    """Draw ``n`` rows of image / ground truth / prediction, label maps in the VOC palette.

    data: a Dataset (items ``(image, mask)`` or dicts, indexed with ``data[i]``) or a loader that
    yields batches (a DataLoader, a :class:`DeviceLoader`: its first batches are used).
    mean, std: the normalisation applied by the transform, undone for display (None: images are
    already in [0, 1]). size: inches per panel. Void (255) shows in the palette's cream colour.
    Returns the Figure.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1; got {n}.")
    images, masks = [], []
    if not hasattr(data, "__getitem__"):  # a loader: take the first batches
        for batch in data:
            x, y = _split_batch(batch)
            images.extend(x), masks.extend(y)
            if len(images) >= n:
                break
    else:
        for i in range(min(n, len(data))):
            x, y = _split_batch(data[i])
            images.append(torch.as_tensor(x)), masks.append(torch.as_tensor(y))
    images, masks = images[:n], masks[:n]
    if not images:
        raise ValueError("show_predictions got no samples; the dataset is empty.")
    preds = predict(model, torch.stack(images), device)
    fig, axes = plt.subplots(len(images), 3, figsize=(3 * size, len(images) * size), squeeze=False)
    for row, (img, mask, pred) in enumerate(zip(images, masks, preds)):
        panels = [_denormalize(img, mean, std), colorize_mask(mask.long()), colorize_mask(pred)]
        for col, (ax, panel, name) in enumerate(zip(axes[row], panels, ("image", "ground truth", "prediction"))):
            ax.imshow(panel)
            ax.axis("off")
            if row == 0:
                ax.set_title(name)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def measure_throughput(model: nn.Module, batch_size: int = 16, image_size: int = 64, num_classes: int = NUM_CLASSES,
                       steps: int = 5, warmup: int = 1, device=None, train: bool = True,
                       amp: bool | None = False) -> float:
    """Images per second of ``model`` alone on random (batch_size, 3, image_size, image_size) inputs (pixels).

    train=True times full training steps (forward, cross-entropy, backward, SGD step on a copy of
    the model, so the original weights are untouched); False times eval-mode forward passes.
    ``warmup`` steps are run first and not timed. amp: False (default) times float32; None chooses
    as :func:`fit` does (autocast on CUDA), so ``amp=None`` gives the figure to compare with
    ``fit``'s ``history.img_per_s`` at the same batch size. Returns a float (img/s).
    """
    device = _resolve_device(model, device)
    use_amp = _use_amp(amp, device)
    net = copy.deepcopy(model).to(device)
    x = torch.randn(batch_size, 3, image_size, image_size, device=device)
    y = torch.randint(0, num_classes, (batch_size, image_size, image_size), device=device)
    opt = torch.optim.SGD(net.parameters(), lr=1e-6)
    net.train(train)

    amp_dtype = _amp_dtype(device)

    def step() -> None:
        autocast = torch.autocast(device_type=device.type, dtype=amp_dtype, enabled=use_amp)
        if train:
            opt.zero_grad(set_to_none=True)
            with autocast:
                logits = net(x)
            nn.functional.cross_entropy(logits.float(), y).backward()
            opt.step()
        else:
            with torch.no_grad(), autocast:
                net(x)

    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch_size * steps / (time.perf_counter() - start)
