"""A training loop for semantic segmentation, written once so notebooks can focus on the model.

The notebooks first write a training step by hand (forward, loss, ``backward``, ``step``); this
module is the tidy version of the same loop with the bookkeeping a student should not retype:

- :func:`fit` trains for some epochs and after each one reports loss, pixel accuracy and mIoU
  (from :mod:`course_utils.metrics`) on the training and validation data, keeps the best weights,
  and returns a :class:`History` that :func:`course_utils.viz.plot_history` can draw.
- :func:`evaluate` runs a model over a loader and returns every metric plus the confusion matrix.
- :func:`show_predictions` draws image / ground truth / prediction rows with the VOC palette.
- :func:`measure_throughput` times training steps and returns images per second.

Batches may be ``(images, masks)`` pairs or dicts with ``"image"`` and ``"mask"`` keys.
Images: float tensors (N, 3, H, W); masks: integer tensors (N, H, W) of class indices, with
255 (VOC "void") ignored by the loss and the metrics. Progress bars come from ``tqdm.auto``:
a bar in Jupyter, plain text in a terminal, nothing when ``TQDM_DISABLE=1`` (CI sets it).
Mixed precision (``torch.autocast`` + a gradient scaler) is used on CUDA only.
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
from .metrics import ConfusionMatrix
from .pretrained import IMAGENET_MEAN, IMAGENET_STD
from .viz import colorize_mask
from .voc import IGNORE_INDEX, NUM_CLASSES

__all__ = ["History", "fit", "evaluate", "predict", "show_predictions", "measure_throughput", "METRIC_KEYS"]

METRIC_KEYS: tuple[str, ...] = ("loss", "pixel_accuracy", "mean_iou", "mean_dice")
"""The scalar metrics :func:`evaluate` returns under these names; :func:`fit` logs each epoch's value
as ``"train_" + key`` and ``"val_" + key`` (``val_mean_iou`` is the same number as ``evaluate(...)["mean_iou"]``)."""


class History(dict):
    """Per-epoch curves, e.g. ``{"train_loss": [...], "val_loss": [...], "val_mean_iou": [...]}``.

    A plain dict (so ``viz.plot_history(history)`` draws it) with extra attributes:
    ``best_epoch`` (1-based; 0 if none), ``best_score``, ``monitor`` (the key that chose it),
    ``best_state`` (the best ``state_dict``, on the CPU), ``epoch_seconds`` and ``img_per_s``
    (training throughput of each epoch).
    """

    def __init__(self) -> None:
        super().__init__()
        self.best_epoch: int = 0
        self.best_score: float = float("nan")
        self.monitor: str = ""
        self.best_state: dict | None = None
        self.epoch_seconds: list[float] = []
        self.img_per_s: list[float] = []

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


def _check_batch(images: torch.Tensor, masks: torch.Tensor, num_classes: int, ignore_index: int) -> None:
    """Catch the common data bugs early, with a message instead of a CUDA assert."""
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


def _nan_error(where: str, loss: torch.Tensor, epoch: int, batch: int) -> FloatingPointError:
    return FloatingPointError(
        f"the loss became {loss.item()} ({where}, epoch {epoch}, batch {batch}). Training cannot go on. "
        "Usual causes: a learning rate too high (try 10x lower), un-normalised inputs (divide by 255 / "
        "use A.Normalize), or a loss computed on an empty set of pixels (every label void).")


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
    """
    device = _resolve_device(model, device)
    use_amp = _use_amp(amp, device)
    loss_fn = loss_fn if loss_fn is not None else nn.CrossEntropyLoss(ignore_index=ignore_index)
    meter = ConfusionMatrix(num_classes, ignore_index=ignore_index)
    total_loss, count, pixels = 0.0, 0, 0
    start = time.perf_counter()
    with eval_mode(model):
        for batch in _progress(loader, _len(loader), "eval", progress):
            images, masks = _split_batch(batch)
            _check_batch(images, masks, num_classes, ignore_index)
            images, masks = images.to(device), masks.to(device).long()
            with torch.autocast(device_type=device.type, enabled=use_amp):
                logits = model(images)
            _check_logits(logits, masks, num_classes)
            valid = int((masks != ignore_index).sum())
            if valid:  # a batch of only void pixels has no loss (CE would return NaN)
                total_loss += float(loss_fn(logits.float(), masks)) * valid
                pixels += valid
            count += images.shape[0]
            meter.update(logits.argmax(dim=1), masks)
    if count == 0:
        raise ValueError("evaluate got an empty loader; check the dataset split and batch size.")
    out = meter.compute()
    out.update(loss=total_loss / pixels if pixels else float("nan"), cm=meter.cm, images=count, seconds=time.perf_counter() - start)
    return out


def fit(model: nn.Module, train_loader: Iterable, val_loader: Iterable | None = None, epochs: int = 10,
        optimizer: torch.optim.Optimizer | None = None, loss_fn: Callable | None = None, device=None,
        num_classes: int = NUM_CLASSES, ignore_index: int = IGNORE_INDEX, scheduler=None,
        monitor: str = "val_mean_iou", checkpoint_path: str | Path | None = None, restore_best: bool = True,
        amp: bool | None = None, progress: bool | None = None, verbose: bool = True) -> History:
    """Train ``model`` for ``epochs`` epochs and return the per-epoch :class:`History`.

    Each epoch: one pass over ``train_loader`` (forward, loss, backward, optimizer step, with
    ``torch.autocast`` + a gradient scaler on CUDA when ``amp`` is None or True), then
    :func:`evaluate` on ``val_loader``. Logged keys: ``train_loss``, ``train_pixel_accuracy``,
    ``train_mean_iou``, ``train_mean_dice`` (from the predictions made while training, so with
    dropout/augmentation on) and ``val_loss``, ``val_pixel_accuracy``, ``val_mean_iou``,
    ``val_mean_dice`` when a validation loader is given: ``"train_"``/``"val_"`` + the names that
    :func:`evaluate` returns (:data:`METRIC_KEYS`).

    optimizer: default ``Adam(lr=1e-3)``. loss_fn: default ``CrossEntropyLoss(ignore_index=255)``;
        it gets ``(logits (N, C, H, W) float, masks (N, H, W) int64)``.
    scheduler: optional; ``scheduler.step()`` is called once per epoch.
    monitor: key that picks the best epoch (``*_loss``: lower is better, others: higher);
        its weights are kept in memory (``history.best_state``), written to ``checkpoint_path`` if
        given, and loaded back into the model at the end when ``restore_best``.
    progress: None = tqdm decides (``TQDM_DISABLE=1`` silences it); verbose prints one line per epoch.
    Raises FloatingPointError as soon as the loss is NaN or infinite, ValueError/TypeError for
    malformed batches (wrong shapes, float masks, labels outside 0..C-1 other than 255).
    """
    if epochs < 0 or int(epochs) != epochs:
        raise ValueError(f"epochs must be a non-negative integer; got {epochs!r}.")
    device = _resolve_device(model, device)
    model.to(device)
    use_amp = _use_amp(amp, device)
    optimizer = optimizer if optimizer is not None else torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = loss_fn if loss_fn is not None else nn.CrossEntropyLoss(ignore_index=ignore_index)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    if val_loader is None and monitor.startswith("val_"):
        monitor = "train_" + monitor[4:]
    lower_is_better = monitor.endswith("loss")
    history = History()
    history.monitor = monitor

    for epoch in range(1, int(epochs) + 1):
        model.train()
        meter = ConfusionMatrix(num_classes, ignore_index=ignore_index)
        total_loss, count = 0.0, 0
        start = time.perf_counter()
        bar = _progress(train_loader, _len(train_loader), f"epoch {epoch}/{epochs}", progress)
        for step, batch in enumerate(bar, start=1):
            images, masks = _split_batch(batch)
            _check_batch(images, masks, num_classes, ignore_index)
            images, masks = images.to(device, non_blocking=True), masks.to(device, non_blocking=True).long()
            if not bool((masks != ignore_index).any()):
                continue  # nothing to learn from a batch of only void pixels (CE would be NaN)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device_type=device.type, enabled=use_amp):
                logits = model(images)
            _check_logits(logits, masks, num_classes)
            loss = loss_fn(logits.float(), masks)
            if not torch.isfinite(loss):
                raise _nan_error("training", loss, epoch, step)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            total_loss += loss.item() * images.shape[0]
            count += images.shape[0]
            meter.update(logits.detach().argmax(dim=1), masks)
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{loss.item():.3f}")
        if count == 0:
            raise ValueError("the training loader gave no batches; check the dataset split and batch size.")
        seconds = time.perf_counter() - start
        history.epoch_seconds.append(seconds)
        history.img_per_s.append(count / seconds if seconds > 0 else float("inf"))
        train_res = dict(meter.compute(), loss=total_loss / count)
        for key in METRIC_KEYS:
            history.log("train_" + key, train_res[key])
        if val_loader is not None:
            res = evaluate(model, val_loader, num_classes, device, loss_fn, ignore_index, progress, amp=use_amp)
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

    data: a Dataset (items ``(image, mask)`` or dicts) or a DataLoader (its first batches are used).
    mean, std: the normalisation applied by the transform, undone for display (None: images are
    already in [0, 1]). size: inches per panel. Void (255) shows in the palette's cream colour.
    Returns the Figure.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1; got {n}.")
    images, masks = [], []
    if isinstance(data, torch.utils.data.DataLoader):
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
                       steps: int = 5, warmup: int = 1, device=None, train: bool = True) -> float:
    """Images per second of ``model`` on random (batch_size, 3, image_size, image_size) inputs (pixels).

    train=True times full training steps (forward, cross-entropy, backward, SGD step on a copy of
    the model, so the original weights are untouched); False times eval-mode forward passes.
    ``warmup`` steps are run first and not timed. Returns a float (img/s).
    """
    device = _resolve_device(model, device)
    net = copy.deepcopy(model).to(device)
    x = torch.randn(batch_size, 3, image_size, image_size, device=device)
    y = torch.randint(0, num_classes, (batch_size, image_size, image_size), device=device)
    opt = torch.optim.SGD(net.parameters(), lr=1e-6)
    net.train(train)

    def step() -> None:
        if train:
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
        else:
            with torch.no_grad():
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
