"""What the setup cell of every notebook calls: ``DEVICE = cu.setup()``."""
from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

import torch

from .core import fast_mode, get_device, in_colab, offline_mode, seed_everything
from .viz import set_style

REPORTED_PACKAGES = ("torch", "torchvision", "albumentations", "segmentation-models-pytorch", "numpy")


def package_version(name: str) -> str:
    """The installed version of distribution ``name`` (e.g. "torch"), or "not installed"."""
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def setup(seed: int = 0, verbose: bool = True) -> torch.device:
    """Prepare a notebook: seed everything, choose the device, set plot defaults, report.

    Prints Python/library versions, the device, FAST/OFFLINE mode and whether this is Colab.
    Returns the chosen ``torch.device`` (cuda > mps > cpu).
    """
    seed_everything(seed)
    device = get_device()
    set_style()
    if verbose:
        versions = ", ".join(f"{name} {package_version(name)}" for name in REPORTED_PACKAGES)
        print(f"Python {platform.python_version()} | {versions}")
        extra = f" ({torch.cuda.get_device_name(0)})" if device.type == "cuda" else ""
        print(f"device: {device}{extra} | seed: {seed}")
        fast = "FAST (few images and epochs)" if fast_mode() else "FULL"
        offline = "OFFLINE (no downloads)" if offline_mode() else "online allowed"
        print(f"mode: {fast} | {offline}" + (" | running on Google Colab" if in_colab() else ""))
    return device
