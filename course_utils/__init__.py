"""course_utils: the small helper package of the course "2D CNNs and Semantic Segmentation".

Teaching modules, one per topic (the README's module map lists them with one line each):
``core`` (modes, paths, seeding, device), ``session`` (the setup cell), ``viz``, ``imaging``,
``voc`` (PASCAL VOC facts), ``voc_generated``, ``download``, ``voc_dataset``, ``fashion_mnist``, ``metrics``,
``receptive_field``, ``models``, ``pretrained``, ``train``. Tools for authors and instructors
(notebook conventions, execution, student versions, grading) live apart in ``course_utils.authoring``.

Re-exported here for notebooks: ``setup``, ``FAST``, ``OFFLINE``, ``fast_mode``, ``offline_mode``,
``env_flag``, ``is_online``, ``data_dir``, ``repo_root``, ``seed_everything``, ``get_device``,
``in_colab``, ``eval_mode``, ``to_numpy``.
"""
from .core import (FAST, OFFLINE, data_dir, env_flag, eval_mode, fast_mode, get_device, in_colab, is_online,
                   offline_mode, repo_root, seed_everything, to_numpy)

__all__ = ["FAST", "OFFLINE", "data_dir", "env_flag", "eval_mode", "fast_mode", "get_device", "in_colab",
           "is_online", "offline_mode", "repo_root", "seed_everything", "setup", "to_numpy"]


def __getattr__(name: str):
    # PEP 562: `cu.setup` is imported on first use, so `import course_utils` stays light (numpy only);
    # the setup cell's call pulls in torch and matplotlib, which every notebook needs anyway.
    if name == "setup":
        from .session import setup

        return setup
    raise AttributeError(f"module 'course_utils' has no attribute {name!r}")
