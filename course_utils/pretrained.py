"""Pretrained torchvision classifiers, honestly: ImageNet weights when we have them, else a clear notice.

Also the one home of the ImageNet normalisation that such weights expect (and that the course's
transforms use for every model, pretrained or not).
"""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

import torch
import torchvision
from torch import nn

from .core import is_online, offline_mode
from .download import download_file

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
"""Per-channel (R, G, B) mean of ImageNet images scaled to [0, 1]: ``A.Normalize(mean=IMAGENET_MEAN, ...)``."""
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
"""Per-channel (R, G, B) standard deviation of ImageNet images scaled to [0, 1]."""

#: Extra constructor arguments so that a randomly initialised model has exactly the architecture
#: that torchvision builds when it loads the ImageNet weights (and no init warning).
_RANDOM_INIT_KWARGS: dict[str, dict] = {
    "googlenet": {"aux_logits": False, "init_weights": True, "transform_input": True},
    "inception_v3": {"init_weights": True, "transform_input": True},
}


def _weights_url(weights: torchvision.models.WeightsEnum) -> str:
    """Where the weight file is downloaded from (a separate function so tests can point it elsewhere)."""
    return weights.url


def weights_file(name: str, weights: str = "DEFAULT") -> tuple[torchvision.models.WeightsEnum, Path]:
    """The torchvision weights enum for ``name`` and the path its file has in the torch hub cache.

    Returns ``(weights, path)``, e.g. ``(ResNet18_Weights.IMAGENET1K_V1,
    <torch.hub.get_dir()>/checkpoints/resnet18-f37072fd.pth)``. The file may or may not exist.
    """
    try:
        enum = torchvision.models.get_model_weights(name)
    except (ValueError, KeyError) as err:
        raise ValueError(f"'{name}' is not a torchvision classification model with ImageNet weights; "
                         f"try one of: resnet18, resnet50, vgg16, alexnet, googlenet, mobilenet_v3_small.") from err
    try:
        chosen = enum[weights] if isinstance(weights, str) else enum(weights)
    except (KeyError, ValueError) as err:
        raise ValueError(f"{enum.__name__} has no weights '{weights}'; available: "
                         f"{', '.join(['DEFAULT'] + [w.name for w in enum])}.") from err
    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(chosen.url).path).name
    return chosen, path


def pretrained(name: str = "resnet18", weights: str = "DEFAULT", *, timeout: float = 20.0,
               check_hash: bool = True, verbose: bool = True) -> nn.Module:
    """A torchvision model with ImageNet weights if we can have them, else the same net, random.

    1. If the weight file is in the torch hub cache (``torch.hub.get_dir()/checkpoints``), load it.
    2. Else, if downloads are allowed (``cu.is_online()``: False at once with COURSE_OFFLINE=1, else
       one 2-second reachability check of the weights server), download it (each network read
       gives up after ``timeout`` seconds, so nothing hangs; like torch hub, the ``-<hex>.`` part of
       the file name must start the file's SHA-256 when ``check_hash``) and load it.
    3. Else build the same architecture (1000 ImageNet outputs) with random initialisation and print
       a notice: its features are not pretrained, so "transfer" from it is training from scratch.

    The returned model (in eval mode) says which case ran:
    ``model.weights_source`` is "cached", "downloaded" or "random";
    ``model.is_pretrained`` is True for the first two; ``model.weights`` is the torchvision weights
    enum (use ``model.weights.transforms()`` for the matching preprocessing and
    ``model.weights.meta["categories"]`` for the 1000 class names, both available offline).
    """
    chosen, path = weights_file(name, weights)
    source, reason = "random", ""
    if path.exists():
        source = "cached"
    else:
        url = _weights_url(chosen)
        parts = urlparse(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if is_online(parts.hostname or "", port):
            try:
                if verbose:
                    print(f"downloading ImageNet weights for {name} ({path.name}) ...")
                match = re.search(r"-([a-f0-9]+)\.", path.name)
                download_file(url, path, timeout=timeout,
                              sha256_prefix=match.group(1) if check_hash and match else None)
                source = "downloaded"
            except Exception as err:  # any network or file problem: fall back, say why
                reason = f"the download failed ({type(err).__name__}: {err})"
        else:
            reason = ("COURSE_OFFLINE=1 is set" if offline_mode() else "the weights server is not reachable") + \
                     " and the file is not in the torch hub cache"
    model = None
    if source != "random":
        try:
            model = torchvision.models.get_model(name, weights=chosen, progress=False)
        except Exception as err:  # e.g. a truncated or foreign file in the cache
            source, reason = "random", f"the cached file could not be loaded ({type(err).__name__}: {err})"
    if model is None:
        kwargs = dict(_RANDOM_INIT_KWARGS.get(name, {}), num_classes=len(chosen.meta["categories"]))
        model = torchvision.models.get_model(name, weights=None, **kwargs)
    model.eval()
    model.weights_source = source
    model.is_pretrained = source != "random"
    model.weights = chosen
    if verbose:
        if model.is_pretrained:
            print(f"{name}: ImageNet weights {chosen} loaded ({source}).")
        else:
            print(f"NOTICE: {name} has RANDOM weights, not ImageNet ones: {reason}.\n"
                  f"  The architecture is the same, but its features are not pretrained: anything\n"
                  f"  called 'transfer' from this model is training from scratch, and its ImageNet\n"
                  f"  predictions are meaningless. To use the real weights, run once with a network\n"
                  f"  (and COURSE_OFFLINE unset), or copy {path.name} into torch.hub.get_dir()/checkpoints.")
    return model
