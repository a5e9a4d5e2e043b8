"""Run nbgrader's command line: ``generate_assignment`` (the release of a source notebook) and friends.

nbgrader needs this Python's ``bin`` first on PATH (it calls ``alembic``); :func:`nbgrader_env` sets it.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil


def nbgrader_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment with this Python's ``bin`` first on PATH, updated with ``extra``."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.update(extra or {})
    return env


def nbgrader_command(*args: str) -> list[str]:
    """``python -m nbgrader ARGS`` with this Python."""
    return [sys.executable, "-m", "nbgrader", *args]


SHIM_FOLDER = ".nbgrader-shims"
SHIMS = {"rfc3987_syntax": 'raise ImportError("left out when course_utils runs nbgrader: it never checks the iri format")\n'}
"""Optional modules hidden from nbgrader and its subprocesses (it calls ``alembic``). jsonschema imports
rfc3987-syntax, when installed (jupyter-events pulls it in), to check the "iri" format; that package
builds a Lark grammar at import: 2.8 s of CPU per nbgrader run and 1.9 s per alembic run on a 2-core
machine, half the cost of grading a small submission. nbgrader never checks that format; with the shim
on PYTHONPATH the import fails and jsonschema goes without it, as where the package is not installed."""


def with_shims(course: Path, env: dict[str, str]) -> dict[str, str]:
    """``env`` with ``course/.nbgrader-shims`` (written here, see :data:`SHIMS`) first on PYTHONPATH."""
    folder = Path(course) / SHIM_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in SHIMS.items():
        (folder / f"{name}.py").write_text(text)
    return {**env, "PYTHONPATH": os.pathsep.join([str(folder), *filter(None, [env.get("PYTHONPATH")])])}


def kill_tree(proc: subprocess.Popen) -> None:
    """Kill a process, its process group and every descendant (kernels run in their own session)."""
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        children = []
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for child in children:
        try:
            child.kill()
        except psutil.Error:
            pass


def run_logged(args: list[str], cwd: Path, env: dict[str, str], timeout: float | None,
               log: Path) -> tuple[int | None, float]:
    """Run a command with stdout and stderr in ``log``; returns (exit code, or None after a timeout; seconds).

    After ``timeout`` seconds the command and everything it started are killed.
    """
    start = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            rc: int | None = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_tree(proc)
            proc.wait()
            rc = None
    return rc, time.perf_counter() - start


def generate_release(source: Path, course: Path, assignment: str) -> Path:
    """Run ``nbgrader generate_assignment`` for ``source`` in the nbgrader course folder ``course``.

    Leaves ``course/source/<assignment>/``, ``course/release/<assignment>/`` (solutions replaced by
    ``raise NotImplementedError()``, hidden tests removed, outputs cleared) and ``course/gradebook.db``.
    Returns the path of the released notebook. Raises RuntimeError with nbgrader's log on failure.
    """
    source, course = Path(source), Path(course)
    src_dir = course / "source" / assignment
    src_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, src_dir / source.name)
    log = course / "generate.log"
    rc, _ = run_logged(nbgrader_command("generate_assignment", assignment, f"--CourseDirectory.root={course}",
                                        "--force"), course, with_shims(course, nbgrader_env()), timeout=300, log=log)
    shutil.rmtree(course / SHIM_FOLDER, ignore_errors=True)
    release = course / "release" / assignment / source.name
    if rc != 0 or not release.exists():
        raise RuntimeError(f"nbgrader generate_assignment failed for {source.name}:\n{log.read_text()[-3000:]}")
    return release
