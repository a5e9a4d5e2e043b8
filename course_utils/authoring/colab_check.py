"""Run every notebook as a student on Colab would, on Colab's own package versions (a replica).

Usage (from the repository root)::

    make colab-check                 # Colab's versions of everything but torch/torchvision (CI)
    make colab-check TORCH=colab     # Colab's torch and torchvision too: the full replica (before a release)
    python -m course_utils.authoring.colab_check --only 00_   # one notebook
    python -m course_utils.authoring.colab_check --refresh-constraints pip-freeze.gpu.txt

What it does, in order:

1. builds a virtual environment (``build/colab-venv``, kept between runs while the pins do not change)
   with Colab's version of every package our notebooks touch, read from :data:`CONSTRAINTS` (generated
   from Colab's published ``pip freeze``); the course package and segmentation-models-pytorch are
   *not* installed, as on Colab, and whatever an earlier run's setup cells installed is uninstalled;
2. puts a stand-in ``google.colab`` module in it, imported when Python starts (as on Colab, where it is
   in ``sys.modules`` before the first cell runs), so the setup cell takes its Colab branch;
3. writes the student release (:mod:`.release`) into a local git repository and points git's
   ``url.<base>.insteadOf`` at it, so the setup cell's ``git clone https://github.com/...`` clones the
   release with no network; its ``%pip install -e`` gets what Colab lacks (smp) from the package
   indexes pip is configured with;
4. runs each notebook with nbclient in a fresh kernel of that environment, in ``/content`` (Colab's
   folder, which the setup cell names; run as root, as CI does, or own that folder), fast and offline as
   ``make test`` does, then runs the setup cell a second time in the same kernel and checks that it
   clones and installs nothing.

The first notebook starts from an empty ``/content`` (the clone and the install run); the others find
the clone there, as a second notebook does on a runtime that ran one already (``--fresh-each`` starts
every notebook from an empty folder). The setup cell is the same in every notebook (the conventions
check), so one fresh run tests the install path for all. Notebook 11 runs twice: the student version
up to the first cell a student writes, and the solution source in full (a finished student notebook),
which the release does not contain.

Not replicated: Colab's GPU (the replica runs on the CPU), Google Drive and the rest of the
``google.colab`` API (the notebooks use none of it), Colab's Python (3.12) unless ``--python`` names
it (by default the venv is made from the Python that runs this tool), and, unless ``--torch colab``,
Colab's torch/torchvision: by default the replica keeps the torch of the running environment (CI's
pinned build: no second multi-GB download) and then leaves out Colab's setuptools pin, which that
torch's metadata rejects (it says so when it does).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable
from datetime import date
from pathlib import Path

import nbformat

from .conventions import GITHUB_REPO, REPO_NAME, SETUP_MARKER
from .exercise import ROOT, SOURCE

CONSTRAINTS = Path(__file__).with_name("colab_constraints.txt")
"""Colab's versions of the packages our notebooks touch (``name==version`` lines; torch's marked)."""
FREEZE_SOURCE = "https://github.com/googlecolab/backend-info/blob/main/pip-freeze.gpu.txt"
COLAB_PACKAGES = (
    # the kernel and the front-end libraries: what differs most from a current Jupyter
    "ipython", "ipykernel", "ipywidgets", "widgetsnbextension", "jupyterlab-widgets", "jupyter-client",
    "jupyter-core", "traitlets", "tornado", "pyzmq", "matplotlib-inline", "debugpy", "nest-asyncio",
    "prompt-toolkit", "pygments", "decorator", "psutil", "packaging",
    # what the notebooks and course_utils import
    "numpy", "scipy", "matplotlib", "pillow", "albumentations", "albucore", "opencv-python-headless",
    "scikit-learn", "timm", "huggingface-hub", "safetensors", "tqdm", "requests", "pyyaml", "pydantic",
    # what the setup cell's `%pip install -e` runs with
    "pip", "setuptools",
)
TORCH_PACKAGES = ("torch", "torchvision")
DROPPED_WITH_OUR_TORCH = ("setuptools",)
"""Colab pins that the course's own torch build rejects (torch 2.14 needs setuptools>=77, Colab has 75.2)."""
VENV = ROOT / "build" / "colab-venv"
"""The replica's environment with the course's torch; ``--torch colab`` keeps its own beside it."""
VENV_COLAB_TORCH = ROOT / "build" / "colab-venv-colab-torch"
CONTENT = Path("/content")
"""Colab's working folder; the setup cell clones the course into it."""
ENV = {"COURSE_FAST": "1", "COURSE_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1",
       "OMP_NUM_THREADS": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
"""The kernel's mode: the same as ``make test`` (fast, offline)."""
SETUP_OUTPUT = re.compile(r"(?i)cloning into|successfully installed|obtaining file|building editable|"
                          r"restart the (kernel|runtime)|fatal:")
"""What git or pip print when the setup cell clones or installs (its second run must print none of it)."""

REPORTED = ("ipython", "ipykernel", "ipywidgets", "traitlets", "jupyter-client", "numpy", "matplotlib",
            "albumentations", "torch", "torchvision")
"""The versions the check prints before it runs anything (evidence of what the notebooks ran on)."""

STAND_IN = '''"""Stand-in for Colab's ``google.colab`` (the course's Colab replica, course_utils.authoring.colab_check).

Colab imports ``google.colab`` before the first cell runs; the course's setup cell only asks whether it
is in ``sys.modules``. Nothing else of Colab is imitated here.
"""
REPLICA = True
'''
STAND_IN_PTH = "zz_colab_replica.pth"


def _norm(name: str) -> str:
    """A distribution name as pip compares them (PEP 503): lower case, runs of ``-_.`` as one ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_freeze(text: str) -> dict[str, str]:
    """``{normalised name: version}`` for every ``name==version`` line of a ``pip freeze`` output.

    Local version labels (``2.11.0+cu128``) are dropped: the package index serves the same release
    without them. Lines pinned to a URL (``name @ https://...``), comments and blanks are skipped.
    """
    found = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;+]+)(\+\S+)?", line)
        if match:
            found[_norm(match.group(1))] = match.group(2)
    return found


def constraints_text(freeze: str, read_on: date | None = None) -> str:
    """The constraints file for :data:`COLAB_PACKAGES` and torch, from Colab's ``pip freeze`` text.

    Raises ValueError naming the packages the freeze lacks (a changed Colab image needs a look).
    """
    versions = parse_freeze(freeze)
    wanted = [_norm(p) for p in COLAB_PACKAGES]
    torch = [_norm(p) for p in TORCH_PACKAGES]
    missing = [p for p in wanted + torch if p not in versions]
    if missing:
        raise ValueError(f"Colab's freeze has no version for {', '.join(missing)}: is it pip-freeze.gpu.txt "
                         f"from {FREEZE_SOURCE}? If Colab dropped a package, remove it from COLAB_PACKAGES.")
    head = [f"# Colab's versions of the packages the course's notebooks touch, read from {FREEZE_SOURCE}",
            f"# on {(read_on or date.today()).isoformat()}. Refresh: download that file, then run",
            "#   python -m course_utils.authoring.colab_check --refresh-constraints pip-freeze.gpu.txt",
            "# Lines marked 'torch' are used only by `make colab-check TORCH=colab`."]
    body = [f"{p}=={versions[p]}" for p in wanted] + [f"{p}=={versions[p]}  # torch" for p in torch]
    return "\n".join(head + body) + "\n"


def read_constraints(path: Path = CONSTRAINTS) -> tuple[dict[str, str], dict[str, str]]:
    """``(packages, torch)``: normalised name -> version, from the constraints file (torch's lines apart).

    Raises ValueError for a line that is not ``name==version`` or a file without the torch lines.
    """
    packages: dict[str, str] = {}
    torch: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        spec, _, comment = line.partition("#")
        spec = spec.strip()
        if not spec:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.!+_-]+)", spec)
        if not match:
            raise ValueError(f"{path}, line {number}: expected 'name==version', found {spec!r} "
                             "(regenerate the file: see its header)")
        (torch if comment.strip() == "torch" else packages)[_norm(match.group(1))] = match.group(2)
    if not packages or set(torch) != set(TORCH_PACKAGES):
        raise ValueError(f"{path} does not look like the Colab constraints file: it needs pinned packages "
                         f"and exactly the lines of {', '.join(TORCH_PACKAGES)} marked '# torch' "
                         "(regenerate it: see its header)")
    return packages, torch


def installed_torch() -> dict[str, str]:
    """The torch and torchvision of the running environment (``name -> version``, local label kept)."""
    from importlib.metadata import version
    return {name: version(name) for name in TORCH_PACKAGES}


def replica_pins(packages: dict[str, str], torch: dict[str, str], colab_torch: bool) -> tuple[list[str], list[str]]:
    """``(pins, dropped)``: the ``name==version`` requirements of the replica and the Colab pins left out.

    With the course's torch (``colab_torch`` false) the pins in :data:`DROPPED_WITH_OUR_TORCH` go.
    """
    dropped = [] if colab_torch else [n for n in map(_norm, DROPPED_WITH_OUR_TORCH) if n in packages]
    pins = [f"{n}=={v}" for n, v in packages.items() if n not in dropped]
    return pins + [f"{n}=={v}" for n, v in torch.items()], [f"{n}=={packages[n]}" for n in dropped]


def write_stand_in(site_packages: Path) -> Path:
    """Write the ``google.colab`` stand-in into ``site_packages`` and import it at start-up (a .pth line).

    ``google`` stays a namespace package (no ``google/__init__.py``), so a real ``google.*`` package
    installed beside it still imports. Returns the .pth file.
    """
    if not site_packages.is_dir():
        raise FileNotFoundError(f"{site_packages} is not a site-packages folder (build the replica's venv first)")
    package = site_packages / "google" / "colab"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(STAND_IN)
    pth = site_packages / STAND_IN_PTH
    pth.write_text("import google.colab\n")
    return pth


def _python_out(python: Path, code: str) -> str:
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True,
                          timeout=120).stdout.strip()


def site_packages_of(python: Path) -> Path:
    return Path(_python_out(python, "import sysconfig; print(sysconfig.get_paths()['purelib'])"))


def installed(python: Path) -> dict[str, str]:
    """``{normalised name: version}`` of every distribution in the environment of ``python``."""
    out = _python_out(python, "import json, importlib.metadata as m; "
                              "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))")
    return {_norm(name): version for name, version in json.loads(out).items() if name}


def default_installer_args() -> list[str]:
    """uv's flags for the package sources pip is configured with (``.ci/uv_args.py``), or none."""
    script = ROOT / ".ci" / "uv_args.py"
    if not script.exists():
        return []
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    return out.stdout.split() if out.returncode == 0 else []


def build_venv(venv: Path = VENV, torch: str = "ours", installer_args: list[str] | None = None,
               constraints: Path = CONSTRAINTS, base_python: str = sys.executable) -> Path:
    """Create (or reuse) the replica's environment; returns its Python.

    ``torch="ours"`` installs the torch/torchvision of the running environment (CI: the course's pinned
    build, quick from the installer's cache) and leaves out Colab's setuptools pin; ``"colab"`` installs
    Colab's. ``installer_args`` go to ``uv pip install`` (package sources, as ``make install``'s
    ``UV_ARGS``; default: what ``.ci/uv_args.py`` prints); uv is used when the running environment has
    it, else pip. A reused environment loses whatever was installed after it was built (the course
    package and smp, which the setup cell installed last time).
    """
    if torch not in ("ours", "colab"):
        raise ValueError(f"torch must be 'ours' or 'colab', got {torch!r}")
    venv = Path(venv).resolve()  # the kernel starts in /content: a relative path would not find its Python
    packages, colab_torch = read_constraints(constraints)
    wanted_torch = colab_torch if torch == "colab" else installed_torch()
    pins, dropped = replica_pins(packages, wanted_torch, torch == "colab")
    if dropped:
        print(f"colab-check: with the course's torch {wanted_torch['torch']}, Colab's {', '.join(dropped)} is "
              "left out (that torch requires a newer one); `--torch colab` keeps every Colab pin", flush=True)
    stamp = venv / ".colab-replica.json"
    key = {"pins": sorted(pins), "python": _python_out(Path(base_python), "import platform; "
                                                       "print(platform.python_version())")}
    python = venv / "bin" / "python"
    state = json.loads(stamp.read_text()) if stamp.exists() else {}
    if state.get("key") == key and python.exists():
        extra = sorted(set(installed(python)) - set(state.get("baseline", ())))
        if extra:
            subprocess.run([str(python), "-m", "pip", "uninstall", "-q", "-y", *extra], check=True, timeout=600)
            print(f"colab-check: reusing {venv}; uninstalled what the last run added: {', '.join(extra)}", flush=True)
        return python
    if venv.exists() and any(venv.iterdir()):
        if not stamp.exists():  # never delete a folder this tool did not make (say, --venv .venv)
            raise FileExistsError(f"{venv} exists and is not a replica made by colab-check: give --venv a new "
                                  "folder or remove this one yourself")
        shutil.rmtree(venv)
    start = time.perf_counter()
    subprocess.run([base_python, "-m", "venv", str(venv)], check=True, timeout=300)
    stamp.write_text(json.dumps({"key": None}))  # ours, even if the install below fails
    try:
        import uv  # noqa: F401  (the course's CI installs with it; see the Makefile)
        args = default_installer_args() if installer_args is None else installer_args
        cmd = [sys.executable, "-m", "uv", "pip", "install", "-q", "--python", str(python), *args]
    except ImportError:
        cmd = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run(cmd + pins, check=True, timeout=3600)
    write_stand_in(site_packages_of(python))
    stamp.write_text(json.dumps({"key": key, "baseline": sorted(installed(python))}, indent=1))
    print(f"colab-check: built {venv} in {time.perf_counter() - start:.0f} s ({len(pins)} pinned packages, "
          f"torch {wanted_torch['torch']})", flush=True)
    return python


def release_repository(dest: Path) -> Path:
    """Write the student release into ``dest`` as a one-commit git repository (what GitHub would serve)."""
    from .release import write_release

    write_release(dest)
    git = ["git", "-c", "user.name=colab-check", "-c", "user.email=colab-check@localhost", "-C", str(dest)]
    subprocess.run(["git", "init", "-q", "-b", "main", str(dest)], check=True, timeout=60)
    subprocess.run(git + ["add", "-A"], check=True, timeout=120)
    subprocess.run(git + ["commit", "-q", "-m", "release (colab-check)"], check=True, timeout=120)
    return dest


def git_config(path: Path, release: Path, repo: str = GITHUB_REPO) -> Path:
    """A git config file that sends ``https://github.com/<repo>`` to the local release (no network).

    Meant for ``GIT_CONFIG_GLOBAL``; only that one repository's address is rewritten, so a clone of any
    other address still fails offline instead of reaching the local copy.
    """
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo):
        raise ValueError(f"repo must look like OWNER/NAME, got {repo!r}")
    release = Path(release).resolve()
    if not (release / ".git").is_dir():
        raise FileNotFoundError(f"{release} is not a git repository (write it with release_repository)")
    path.write_text(f'[url "file://{release}"]\n\tinsteadOf = https://github.com/{repo}\n'
                    f"[safe]\n\tdirectory = {release}\n")
    return path


def kernel_env(gitconfig: Path, venv: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """The replica kernel's environment: ``base`` (default: this process's) without the course's
    environment or paths, the replica's ``bin`` first on ``PATH``, plus :data:`ENV` and the git config."""
    base = dict(os.environ if base is None else base)
    for key in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "JUPYTER_PATH", "COURSE_DATA", "MPLBACKEND",
                "PYTHONSTARTUP"):
        base.pop(key, None)
    ours = {str(Path(sys.prefix) / "bin"), str(Path(sys.executable).parent)}
    paths = [p for p in base.get("PATH", "").split(os.pathsep)
             if p and p not in ours and not Path(p).is_relative_to(ROOT)]
    base["PATH"] = os.pathsep.join([str(Path(venv).resolve() / "bin"), *paths])
    return {**base, **ENV, "GIT_CONFIG_GLOBAL": str(gitconfig), "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0"}


@dataclass
class Run:
    """One notebook's run in the replica."""
    name: str
    seconds: float = 0.0
    error: str = ""
    notes: list[str] = field(default_factory=list)
    timed_out: bool = False   # a cell got no reply within the cell time limit

    @property
    def ok(self) -> bool:
        return not self.error


def output_text(cell: nbformat.NotebookNode) -> str:
    """The text a cell printed (streams, errors and text/plain results), as one string."""
    parts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type == "error":
            parts.append(f"{out.ename}: {out.evalue}\n")
        elif "text/plain" in out.get("data", {}):
            parts.append(out.data["text/plain"] + "\n")
    return "".join(parts)


def warnings_of(nb: nbformat.NotebookNode) -> list[str]:
    """The distinct ``SomethingWarning: message`` lines the notebook's cells printed (in order)."""
    found: list[str] = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                for line in out.text.splitlines():
                    match = re.search(r"\b[A-Z]\w*Warning: .*", line)
                    if match and match.group(0)[:200] not in found:
                        found.append(match.group(0)[:200])
    return found


def _short_error(error: Exception) -> str:
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    return (lines[-1] if lines else type(error).__name__)[:400]


def run_notebook(path: Path, python: Path, content: Path, env: dict[str, str], stop_at_student_code: bool = False,
                 timeout: int = 600) -> Run:
    """Execute the notebook at ``path`` in a fresh replica kernel whose working folder is ``content``.

    Then the setup cell runs again in the same kernel: it must print no clone or install output, install
    nothing and leave the clone untouched. ``stop_at_student_code``: stop (successfully) before the first
    cell with a ``# YOUR CODE HERE`` block (the student version).
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    run = Run(path.name + (" (student version)" if stop_at_student_code else ""))
    before_run = installed(python)
    with tempfile.TemporaryDirectory() as kernels:
        spec = Path(kernels) / "kernels" / "colab-replica"
        spec.mkdir(parents=True)
        (spec / "kernel.json").write_text(json.dumps({
            "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Colab replica", "language": "python"}))
        saved = os.environ.get("JUPYTER_PATH")
        os.environ["JUPYTER_PATH"] = kernels  # where nbclient's kernel manager finds the kernel above
        client = NotebookClient(nb, timeout=timeout, kernel_name="colab-replica",
                                resources={"metadata": {"path": str(content)}})
        start = time.perf_counter()
        try:
            with client.setup_kernel(env=env, cwd=str(content)):
                for channel in (client.kc.shell_channel, client.kc.iopub_channel):
                    channel.get_msg = in_slices(channel.get_msg)
                setup_index = None
                slowest = (0.0, -1)
                for index, cell in enumerate(nb.cells):
                    if cell.cell_type != "code":
                        continue
                    if cell.source.startswith(SETUP_MARKER) and setup_index is None:
                        setup_index = index
                    if stop_at_student_code and "YOUR CODE HERE" in cell.source:
                        run.notes.append(f"stopped before cell {index}, the first a student writes")
                        break
                    began = time.perf_counter()
                    try:
                        client.execute_cell(cell, index)
                    except CellExecutionError as error:
                        run.error = f"cell {index}: {_short_error(error)}"
                        break
                    finally:
                        slowest = max(slowest, (time.perf_counter() - began, index))
                run.seconds = time.perf_counter() - start
                if slowest[1] >= 0:
                    run.notes.append(f"slowest cell {slowest[1]} ({slowest[0]:.1f} s)")
                warned = warnings_of(nb)
                if warned:
                    run.notes.append(f"{len(warned)} kind(s) of warning: " + " | ".join(warned[:3]))
                added = sorted(set(installed(python)) - set(before_run))
                if added:
                    run.notes.append(f"the setup cell installed {', '.join(added)}")
                if setup_index is None:
                    run.error = run.error or "no setup cell (the conventions check should have caught this)"
                elif not run.error:
                    run.error = _second_setup_run(client, nb.cells[setup_index].source, setup_index, python,
                                                  content, run.notes)
        except Exception as error:  # a kernel that died or could not start is a failure of this notebook
            run.timed_out = type(error).__name__ == "CellTimeoutError"
            run.error = run.error or f"{type(error).__name__}: {_short_error(error)}"
            run.seconds = run.seconds or time.perf_counter() - start
        finally:
            if saved is None:
                os.environ.pop("JUPYTER_PATH", None)
            else:
                os.environ["JUPYTER_PATH"] = saved
    return run


def in_slices(get_msg, step: float = 1.0):
    """A kernel channel's async ``get_msg`` that waits for a message in slices of ``step`` seconds.

    The client's ``get_msg(timeout=T)`` polls its ZeroMQ socket once for up to T seconds; a wake-up
    missed there (the socket's edge-triggered descriptor) leaves a message that has arrived unread
    until T runs out. Two replica runs waited exactly their 600-s cell limit with the kernel idle and
    then went on with the reply in hand (08 on 6 December, 01 in a CI run on 7 December). Polling in
    one-second slices reads such a message within a second. ``timeout=None`` waits for ever, in slices.
    """
    from queue import Empty

    async def get(timeout: float | None = None, **kwargs):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = step if deadline is None else max(0.0, min(step, deadline - time.monotonic()))
            try:
                found = get_msg(timeout=wait, **kwargs)
                return await found if hasattr(found, "__await__") else found
            except Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise
    return get


def once_more_if_no_reply(run: Callable[[], Run], timeout: float) -> Run:
    """``run()``, and once more in a fresh kernel if a cell got no reply within ``timeout`` seconds.

    A harness that waits for a reply that never comes (jupyter/nbclient#312: widget cells; see also
    :func:`in_slices`) is not a fact about Colab, which has no nbclient: a second run decides, and the
    note says it happened. Any other failure is not run again.
    """
    first = run()
    if not first.timed_out:
        return first
    second = run()
    what = f"first run: {first.error} (no reply within {timeout:g} s; jupyter/nbclient#312)"
    if second.ok:
        second.notes.insert(0, what + "; it passed on a second run")
    else:
        second.error = f"{second.error}; {what}"
    return second


def _second_setup_run(client, source: str, index: int, python: Path, content: Path, notes: list[str]) -> str:
    """Run the setup cell again in the same kernel; the error text if it did anything but report."""
    clone = content / REPO_NAME
    if not (clone / ".git").is_dir():
        return f"the setup cell left no clone at {clone}"
    head = (clone / ".git" / "HEAD").stat().st_mtime_ns, clone.stat().st_mtime_ns
    packages = installed(python)
    again = nbformat.v4.new_code_cell(source)
    start = time.perf_counter()
    client.execute_cell(again, index)
    text = output_text(again)
    if ((clone / ".git" / "HEAD").stat().st_mtime_ns, clone.stat().st_mtime_ns) != head:
        return "the setup cell's second run touched the clone"
    if installed(python) != packages:
        return "the setup cell's second run changed the installed packages"
    if SETUP_OUTPUT.search(text):
        return f"the setup cell's second run printed clone/install output: {text[:300]!r}"
    notes.append(f"second setup run {time.perf_counter() - start:.1f} s, nothing cloned or installed")
    return ""


def notebooks_of(release: Path, source: Path = SOURCE) -> list[tuple[Path, bool]]:
    """``(path, stop_at_student_code)`` for each notebook to run: the release's notebooks in order, the
    student version of 11 (up to its first student cell), then 11's solution source in full."""
    found = [(p, False) for p in sorted((release / "notebooks").glob("[0-9]*.ipynb"))]
    found += [(p, True) for p in sorted((release / "notebooks" / "student").glob("[0-9]*.ipynb"))]
    if source.exists():
        found.append((source, False))
    return found


REPLICA_INPUTS = ("notebooks/", "course_utils/", "requirements.txt", "pyproject.toml")
"""What a replica run depends on (besides the pins): the notebooks and the package students install.
The instructor wing ``course_utils/authoring/`` is left out, except this tool and its pins."""
STAMP = ROOT / "build" / "colab-check-{torch}.json"
"""Written after a run of every notebook that passed: the inputs' digest, the versions, the times."""


def inputs_digest(root: Path = ROOT, files: list[str] | None = None) -> str:
    """SHA-256 of :data:`REPLICA_INPUTS` in the checkout (paths and bytes), with this tool and
    :data:`CONSTRAINTS`: a stamp stays valid exactly as long as none of them changes."""
    import hashlib

    from .release import checkout_files

    wanted = sorted(f for f in (files if files is not None else checkout_files(root))
                    if f.startswith(REPLICA_INPUTS) and not f.startswith("course_utils/authoring/")
                    and (root / f).is_file())
    digest = hashlib.sha256()
    for rel in wanted + ["course_utils/authoring/colab_check.py", "course_utils/authoring/colab_constraints.txt"]:
        digest.update(rel.encode() + b"\0" + (root / rel).read_bytes() + b"\0")
    return digest.hexdigest()


def write_stamp(path: Path, torch: str, runs: list["Run"], seconds: float, versions: dict[str, str],
                digest: str) -> None:
    """Record a passing run of every notebook (what :func:`stamp_problem` checks before a release)."""
    if not runs or not all(r.ok for r in runs):
        raise ValueError("only a run in which every notebook passed may be stamped")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "digest": digest, "torch": torch, "date": date.today().isoformat(), "seconds": round(seconds),
        "versions": {name: versions.get(name, "MISSING") for name in REPORTED},
        "notebooks": {r.name: round(r.seconds, 1) for r in runs}}, indent=1) + "\n")


def stamp_problem(path: Path, torch: str, digest: str) -> str:
    """"" if ``path`` records a passing replica of every notebook for inputs with this ``digest``, else
    what is missing, in words an instructor can act on."""
    again = (f"run `make colab-check{' TORCH=colab' if torch == 'colab' else ''}` (every notebook on Colab's "
             f"versions{', torch included' if torch == 'colab' else ''}) and release after it passes")
    if not path.exists():
        return f"no full Colab replica (torch: {torch}) has passed in this checkout ({path} is missing): {again}"
    try:
        stamp = json.loads(path.read_text())
        if stamp["torch"] != torch:
            return f"{path} records a replica with torch {stamp['torch']!r}, not {torch!r}: {again}"
        if stamp["digest"] != digest:
            return (f"the notebooks or course_utils changed since the Colab replica passed on {stamp['date']} "
                    f"({path}): {again}")
    except (ValueError, KeyError, TypeError):
        return f"{path} is not a Colab replica's record: {again}"
    return ""


def run_label(path: Path, student: bool) -> str:
    """What ``--only`` matches: the file name, with ``student/`` before the student version of 11 (so
    ``--only student/`` picks it without the solution, and ``--only 11_`` picks both)."""
    return ("student/" if student else "") + path.name


def check_content(content: Path) -> str:
    """An error text if ``content`` cannot be Colab's working folder here, else ""."""
    try:
        content.mkdir(parents=True, exist_ok=True)
        probe = content / ".colab-check-probe"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        return (f"colab-check needs to write to {content}, Colab's working folder, where the setup cell clones "
                f"the course: {error}. Run it as root (CI does), or create the folder and give it to your user "
                f"(sudo mkdir {content} && sudo chown $USER {content}).")
    if (content / REPO_NAME).exists() and not (content / REPO_NAME / ".git").is_dir():
        return f"{content / REPO_NAME} exists and is not a clone: move it away (colab-check replaces the clone)"
    return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_utils.authoring.colab_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--torch", choices=("ours", "colab"), default="ours",
                        help="'colab': Colab's torch/torchvision too (default: this environment's)")
    parser.add_argument("--venv", type=Path, help=f"the replica's environment (default {VENV.relative_to(ROOT)}, "
                        f"with --torch colab {VENV_COLAB_TORCH.relative_to(ROOT)})")
    parser.add_argument("--python", default=sys.executable, metavar="PYTHON",
                        help="the Python the replica's venv is made from (Colab: python3.12; default: this one)")
    parser.add_argument("--fresh-each", action="store_true", help="start every notebook from an empty /content")
    parser.add_argument("--only", default="", metavar="TEXT",
                        help="run only the notebooks whose file name contains TEXT (comma-separated: any of them; "
                             "'student/' is the student version of 11)")
    parser.add_argument("--cell-timeout", type=int, default=600, metavar="SECONDS",
                        help="seconds a cell may run before the notebook is run once more, then failed "
                             "(default %(default)s; CI: 120, the slowest cell takes 13 s here)")
    parser.add_argument("--verify", action="store_true",
                        help="run nothing: exit 1 unless a full replica with this --torch passed on the current "
                             "notebooks and course_utils (make release asks this)")
    parser.add_argument("--refresh-constraints", type=Path, metavar="FREEZE",
                        help=f"rewrite {CONSTRAINTS.name} from Colab's pip-freeze.gpu.txt, then stop")
    parser.add_argument("installer_args", nargs=argparse.REMAINDER,
                        help="after --: arguments for `uv pip install` (package sources, as UV_ARGS)")
    args = parser.parse_args(argv)
    if args.refresh_constraints:
        CONSTRAINTS.write_text(constraints_text(args.refresh_constraints.read_text()))
        print(f"wrote {CONSTRAINTS}")
        return 0
    if args.verify:
        problem = stamp_problem(Path(str(STAMP).format(torch=args.torch)), args.torch, inputs_digest())
        print(f"colab-check: {problem or 'a full replica passed on these notebooks'}",
              file=sys.stderr if problem else sys.stdout)
        return 1 if problem else 0
    problem = check_content(CONTENT)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    total = time.perf_counter()
    digest = inputs_digest()  # of what this run tests (a change made while it runs is not covered)
    extra = [a for a in args.installer_args if a != "--"] or None
    args.venv = (args.venv or (VENV_COLAB_TORCH if args.torch == "colab" else VENV)).resolve()
    python = build_venv(args.venv, args.torch, extra, base_python=args.python)
    have = installed(python)
    print("colab-check: the replica's kernel has " + ", ".join(
        f"{name} {have.get(name, 'MISSING')}" for name in REPORTED), flush=True)
    wanted = [w for w in args.only.split(",") if w] or [""]
    runs = []
    with tempfile.TemporaryDirectory(prefix="colab-check-") as tmp:
        release = release_repository(Path(tmp) / "release")
        env = kernel_env(git_config(Path(tmp) / "gitconfig", release), args.venv)
        todo = [(p, s) for p, s in notebooks_of(release) if any(w in run_label(p, s) for w in wanted)]
        if not todo:
            print(f"colab-check: no notebook's name contains {args.only!r}", file=sys.stderr)
            return 2
        print(f"colab-check: release written and committed in {time.perf_counter() - total:.0f} s so far; "
              f"running {len(todo)} notebooks in {CONTENT}", flush=True)
        for number, (path, student) in enumerate(todo):
            if number == 0 or args.fresh_each:
                shutil.rmtree(CONTENT / REPO_NAME, ignore_errors=True)
            run = once_more_if_no_reply(lambda: run_notebook(path, python, CONTENT, env, stop_at_student_code=student,
                                                             timeout=args.cell_timeout), args.cell_timeout)
            runs.append(run)
            status = "ok" if run.ok else "FAILED"
            print(f"colab-check: {run.name:<50} {status:>6} {run.seconds:6.1f} s  {run.error or '; '.join(run.notes)}",
                  flush=True)
        shutil.rmtree(CONTENT / REPO_NAME, ignore_errors=True)
    failed = [r for r in runs if not r.ok]
    seconds = time.perf_counter() - total
    print(f"colab-check: {len(runs) - len(failed)}/{len(runs)} notebooks passed on Colab's versions "
          f"(torch: {args.torch}) in {seconds:.0f} s", flush=True)
    stamp = Path(str(STAMP).format(torch=args.torch))
    if not failed and not args.only:
        write_stamp(stamp, args.torch, runs, seconds, have, digest)
        print(f"colab-check: recorded in {stamp} (make release checks it)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
