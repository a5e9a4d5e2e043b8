"""Repository-wide pytest setup, for the unit tests AND the notebooks (``make test`` runs both).

It lives at the root because nbval collects notebooks/ too, and its kernels inherit this
process's environment: the fast/offline defaults below reach them. It also prints a
per-notebook timing summary. Fixtures for the unit tests only are in ``tests/conftest.py``.
"""
import os
from collections import defaultdict

os.environ.setdefault("COURSE_FAST", "1")
os.environ.setdefault("COURSE_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

_notebook_seconds: dict[str, float] = defaultdict(float)
_notebook_cells: dict[str, int] = defaultdict(int)


def pytest_runtest_logreport(report):
    path = report.nodeid.split("::")[0]
    if path.endswith(".ipynb"):
        _notebook_seconds[path] += report.duration
        if report.when == "call":
            _notebook_cells[path] += 1


def pytest_terminal_summary(terminalreporter):
    if not _notebook_seconds:
        return
    terminalreporter.section("notebook timings (slowest first)")
    for path, seconds in sorted(_notebook_seconds.items(), key=lambda kv: -kv[1]):
        terminalreporter.write_line(f"{seconds:7.1f} s  {_notebook_cells[path]:3d} cells  {path}")
    terminalreporter.write_line(f"{sum(_notebook_seconds.values()):7.1f} s  total (notebook time, summed over workers)")
