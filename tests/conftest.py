"""Fixtures and settings for the unit tests in tests/ only.

The repository's root ``conftest.py`` holds what applies to the notebooks too (fast/offline
defaults inherited by nbval's kernels, the per-notebook timing summary); this file holds what only
the unit tests need, so running one test file never starts a kernel.
"""
import matplotlib
import pytest

matplotlib.use("Agg")  # unit tests draw figures without a screen


@pytest.fixture(scope="session")
def toy_root(tmp_path_factory):
    """A small generated VOC dataset (24 images, seed 3), built once per test session: the root that
    contains VOCdevkit/. Tests must not modify it (copy it when they need to)."""
    from course_utils.voc_generated import make_toy_voc

    return make_toy_voc(tmp_path_factory.mktemp("toy"), 24, seed=3)


_session_start = [0.0]


def pytest_sessionstart(session):
    import time

    _session_start[0] = time.time()


def pytest_terminal_summary(terminalreporter):
    """Say where the browser tests saved their screenshots (written this session), for a person to look at."""
    from browser_support import ARTIFACTS

    shots = sorted(p.name for p in ARTIFACTS.glob("*.png") if p.stat().st_mtime >= _session_start[0])
    if shots:
        terminalreporter.section("screenshots (browser tests)")
        terminalreporter.write_line(f"{ARTIFACTS}/: {', '.join(shots)}")
