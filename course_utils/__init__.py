"""course_utils: the small helper package of the course "2D CNNs and Semantic Segmentation".

One module per topic: ``imaging`` (filters, Bayer), ``data`` (PASCAL VOC), ``metrics``,
``receptive_field``, ``models``, ``train``, ``viz``, ``grading``; ``core`` holds the plumbing
re-exported here (``setup``, ``FAST``, ``OFFLINE``, ``is_online``, ``data_dir``).
"""
from .core import (FAST, OFFLINE, data_dir, env_flag, eval_mode, get_device, in_colab, is_online,
                   repo_root, seed_everything, setup)

__all__ = ["FAST", "OFFLINE", "data_dir", "env_flag", "eval_mode", "get_device", "in_colab", "is_online",
           "repo_root", "seed_everything", "setup"]
__version__ = "0.1.0"
