"""Course plumbing: modes, paths, seeding, device choice, network check, small conversions.

This is the lowest layer of the package: it imports nothing else from ``course_utils``.

Environment variables (read by :func:`fast_mode` and :func:`offline_mode`, their one home)
------------------------------------------------------------------------------------------
COURSE_FAST=1     fewer images and epochs so every notebook runs in seconds on a CPU (CI sets it).
COURSE_OFFLINE=1  never touch the network: downloads are skipped at once (CI sets it).
COURSE_DATA=PATH  where datasets live (default: the repository's ``data/`` folder).
"""
from __future__ import annotations

import os
import random
import socket
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # torch is imported inside the functions that need it: `import course_utils` stays light
    import torch

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def env_flag(name: str, default: bool = False) -> bool:
    """Read a boolean environment variable such as ``COURSE_FAST``.

    Accepts 1/true/yes/on and 0/false/no/off (any case). Unset means ``default``.
    Anything else raises ValueError, so a typo never silently flips a mode.
    """
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{name}={raw!r} is not a yes/no value; use {name}=1 or {name}=0.")


def fast_mode() -> bool:
    """True when ``COURSE_FAST=1``: notebooks use fewer images and epochs (same code path)."""
    return env_flag("COURSE_FAST")


def offline_mode() -> bool:
    """True when ``COURSE_OFFLINE=1``: every download is skipped at once."""
    return env_flag("COURSE_OFFLINE")


FAST: bool = fast_mode()
"""``fast_mode()`` when the package was imported: what a notebook reads (``if cu.FAST: ...``).
Library code calls :func:`fast_mode` instead, so a test that changes the variable is seen."""
OFFLINE: bool = offline_mode()
"""``offline_mode()`` when the package was imported (for notebooks; library code calls the function)."""

# Albumentations asks PyPI for a newer release on import; never let that touch the network.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
if OFFLINE:  # make Hugging Face (smp/timm weights) fail in 0.2 s instead of retrying for ~20 s
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

_ONLINE_CACHE: dict[tuple[str, int], bool] = {}


def is_online(host: str = "download.pytorch.org", port: int = 443, timeout: float = 2.0) -> bool:
    """Return True if a TCP connection to ``host:port`` opens within ``timeout`` seconds.

    The answer is cached per (host, port), so a notebook pays for the check once.
    With COURSE_OFFLINE=1 it returns False without touching the network. The check runs
    in a daemon thread, so even a hanging DNS lookup cannot block the caller for longer
    than ``timeout`` seconds.
    """
    if offline_mode():
        return False
    key = (host, port)
    if key in _ONLINE_CACHE:
        return _ONLINE_CACHE[key]
    result = {"ok": False}

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result["ok"] = True
        except OSError:
            pass

    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(timeout)
    _ONLINE_CACHE[key] = bool(result["ok"]) and not worker.is_alive()
    return _ONLINE_CACHE[key]


def repo_root() -> Path | None:
    """The repository folder when course_utils runs from a checkout (editable install), else None.

    A checkout is recognised by ``notebooks/`` and ``course_utils/`` side by side.
    """
    here = Path(__file__).resolve().parent.parent
    return here if (here / "notebooks").is_dir() and (here / "course_utils").is_dir() else None


def data_dir() -> Path:
    """Folder for datasets and caches: ``$COURSE_DATA`` if set, else the repository's ``data/``.

    Outside a checkout (a plain ``pip install``) it falls back to ``./data``. The folder is
    created if missing. Returns an absolute Path.
    """
    root = repo_root()
    if os.environ.get("COURSE_DATA"):
        path = Path(os.environ["COURSE_DATA"]).expanduser()
    elif root is not None:
        path = root / "data"
    else:
        path = Path.cwd() / "data"
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def shown_path(path: str | os.PathLike) -> str:
    """A path for printing in notebooks: relative to ``data_dir()`` when inside it, never absolute.

    ``data_dir()/toy-voc`` for a folder below the data folder, else just the last path component
    (committed notebook outputs must not show the author's machine paths).
    """
    path = Path(path).resolve()
    try:
        rel = path.relative_to(data_dir())
    except ValueError:
        return path.name or str(path)
    return "data_dir()" + ("" if str(rel) == "." else f"/{rel.as_posix()}")


def to_numpy(x: Any) -> np.ndarray:
    """A NumPy array from a NumPy array, a list, or a torch tensor on any device (detached, on the CPU).

    The one place where tensors become arrays; no copy is made when ``x`` already is an ndarray.
    """
    if hasattr(x, "detach"):  # a torch tensor (checked by duck typing, so torch is not imported here)
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def seed_everything(seed: int = 0) -> None:
    """Seed Python's ``random``, NumPy and PyTorch (CPU and all GPUs) with ``seed``.

    Albumentations keeps its own random state: seed a pipeline with ``A.Compose(..., seed=...)``.
    """
    import torch  # lazy: see the note at the top of the file

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


@contextmanager
def eval_mode(model: "torch.nn.Module"):
    """``with eval_mode(model):`` runs the block with ``model`` (an ``nn.Module``) in eval mode.

    Afterwards every submodule gets back its *own* training flag. The usual
    ``was_training = model.training; ...; model.train(was_training)`` sets all submodules to one
    flag: it switches a frozen backbone that was deliberately kept in ``eval()`` back to training
    mode, and a wrapper such as ``nn.Sequential(encoder.conv1, encoder.bn1)`` (in training mode
    when built) would put the borrowed BatchNorm layers of an eval-mode encoder on batch statistics.
    """
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        yield model
    finally:
        for module, flag in modes.items():
            module.training = flag


def get_device(prefer: str | None = None) -> "torch.device":
    """Pick the compute device: CUDA if present, else Apple's MPS, else the CPU.

    ``prefer`` (e.g. "cpu") forces a choice; an unavailable choice raises ValueError.
    """
    import torch  # lazy: see the note at the top of the file

    if prefer is not None:
        if prefer.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError("device 'cuda' requested but no CUDA GPU is visible; use 'cpu' or leave it out.")
        if prefer == "mps" and not _mps_available():
            raise ValueError("device 'mps' requested but MPS is not available; use 'cpu' or leave it out.")
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    import torch  # lazy: see the note at the top of the file

    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def in_colab() -> bool:
    """True when running inside Google Colab."""
    return "google.colab" in sys.modules
