"""Grade the exercise with nbgrader: one command for a folder of submissions, a gradebook CSV out.

Instructor command (from the repository root, after the README's install)::

    python -m course_utils.grading SUBMISSIONS_DIR --out grades.csv

``SUBMISSIONS_DIR/<student_id>/<notebook>.ipynb`` holds one submission per student (the notebook
name should be the exercise's, ``11_exercise_unet_voc64.ipynb``; a single notebook with another name
is accepted with a note). The CSV has one row per student: ``student``, the points of each graded
part (one column per graded test cell of the source notebook, in notebook order), ``total``,
``max``, ``status`` (graded / timeout / error / missing) and ``notes`` (why points were lost).

Under the hood, for each submission, in its own worker process with its own time limits:
``nbgrader autograde`` (solutions are run, the instructor's test cells, including hidden tests, are
put back even if the student edited or deleted them, every graded cell scores its points or zero),
then :class:`PartsExportPlugin` (an nbgrader export plugin) reads the points per part out of that
submission's gradebook. A cell that runs longer than ``--cell-timeout`` is interrupted (it and the
cells that need it score zero; the rest still run); a notebook that runs longer than
``--notebook-timeout`` is killed and scores zero with status ``timeout``.

Many students: submissions are graded in parallel (``--workers``), each in its own nbgrader course
folder under the work folder (``--work``, default ``.nbgrader_work`` next to the CSV), so no two
workers share a gradebook. Each result is stored with a key made of the submission's bytes, the
source notebook's bytes and the settings: running the command again re-grades only what changed
(``--force`` re-grades everything) and writes the same CSV.

Student version (solutions and hidden tests removed, outputs cleared), regenerated after every edit
of the source notebook and committed::

    python -m course_utils.grading --student-version          # writes notebooks/student/...
    python -m course_utils.grading --check-student-version    # exit 1 if it is out of date

Submissions are student code: the grader runs it with your user's rights. Grade inside a container
or a throwaway account if that matters to you.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import copy
import csv
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

try:  # nbgrader is an instructor extra (requirements.txt installs it); the plugin needs its base class
    from nbgrader.plugins import ExportPlugin as _ExportPlugin
except ImportError:  # pragma: no cover - only without nbgrader
    _ExportPlugin = object  # type: ignore[assignment,misc]

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = "11_exercise_unet_voc64"
SOURCE = ROOT / "notebooks" / f"{NOTEBOOK}.ipynb"
STUDENT = ROOT / "notebooks" / "student" / f"{NOTEBOOK}.ipynb"
ASSIGNMENT = "unet_voc64"
GRADER_VERSION = "1"  # bump when grading logic changes, so cached results are redone

__all__ = ["Result", "grade_folder", "grade_submission", "prepare_template", "generate_student_version",
           "graded_parts", "PartsExportPlugin", "write_csv", "main"]


# ---------------------------------------------------------------- helpers

def nbgrader_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for nbgrader: this Python's ``bin`` first on PATH (nbgrader calls ``alembic``)."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.update(extra or {})
    return env


def _kill_tree(proc: subprocess.Popen) -> None:
    """Kill a process, its process group and every descendant (kernels run in their own session)."""
    try:
        import psutil

        children = psutil.Process(proc.pid).children(recursive=True)
    except Exception:
        children = []
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for child in children:
        try:
            child.kill()
        except Exception:
            pass


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: float | None, log: Path) -> tuple[int | None, float]:
    """Run a command with its output in ``log``; returns (exit code or None on timeout, seconds)."""
    start = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            rc: int | None = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_tree(proc)
            proc.wait()
            rc = None
    return rc, time.perf_counter() - start


def _nbgrader(*args: str) -> list[str]:
    return [sys.executable, "-m", "nbgrader", *args]


def _sha256(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()


def graded_parts(notebook: Path | nbformat.NotebookNode) -> dict[str, float]:
    """``{grade_id: points}`` of the graded (test) cells of a source notebook, in notebook order."""
    nb = nbformat.read(notebook, as_version=4) if isinstance(notebook, (str, Path)) else notebook
    parts: dict[str, float] = {}
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade"):
            parts[meta["grade_id"]] = float(meta.get("points", 0))
    return parts


# ---------------------------------------------------------------- student version

def _generate(source: Path, course: Path, assignment: str, env: dict[str, str]) -> Path:
    """Run ``nbgrader generate_assignment`` for ``source`` in the course folder ``course``."""
    src_dir = course / "source" / assignment
    src_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, src_dir / source.name)
    log = course / "generate.log"
    rc, _ = _run(_nbgrader("generate_assignment", assignment, f"--CourseDirectory.root={course}", "--force"),
                 course, env, timeout=300, log=log)
    release = course / "release" / assignment / source.name
    if rc != 0 or not release.exists():
        raise RuntimeError(f"nbgrader generate_assignment failed for {source.name}:\n{log.read_text()[-3000:]}")
    return release


def generate_student_version(source: Path = SOURCE, dest: Path | None = STUDENT, root: Path = ROOT,
                             assignment: str = ASSIGNMENT, badge: bool = True) -> nbformat.NotebookNode:
    """The student version of ``source``: nbgrader's release (solutions replaced by
    ``raise NotImplementedError()``, hidden tests removed, outputs cleared, test cells locked), with
    the title cell's Colab badge pointing at the student version's own path. Written to ``dest``
    (relative to ``root`` for the badge) unless ``dest`` is None. ``badge=False`` leaves the title
    and setup cells as nbgrader wrote them (for notebooks outside the course). Returns the notebook.
    """
    from . import notebooks as nbtool

    source = Path(source).resolve()
    with tempfile.TemporaryDirectory(prefix="nbgrader-release-") as tmp:
        release = _generate(source, Path(tmp), assignment, nbgrader_env())
        nb = nbformat.read(release, as_version=4)
    rel = nbtool.relpath_of(dest, root) if dest is not None else f"notebooks/student/{source.name}"
    if badge:
        nbtool.refresh(nb, rel)
    for cell in nb.cells:  # nbformat gives new cells random ids; keep them stable for clean diffs
        cell.pop("id", None)
    nb.nbformat, nb.nbformat_minor = 4, 4
    if dest is not None:
        Path(dest).parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, dest)
    return nb


def student_version_problems(committed: Path = STUDENT, source: Path = SOURCE, root: Path = ROOT,
                             fresh: nbformat.NotebookNode | None = None) -> list[str]:
    """Differences between the committed student version and one generated now from ``source``
    (or the given ``fresh`` one): cell types, sources and nbgrader metadata. Empty = in sync."""
    from . import notebooks as nbtool

    rel = Path(committed).resolve().relative_to(Path(root).resolve()).as_posix()
    if fresh is None:
        fresh = generate_student_version(source, None, root)
    fresh = copy.deepcopy(fresh)
    nbtool.refresh(fresh, rel)
    if not Path(committed).exists():
        return [f"{rel} does not exist; run `python -m course_utils.grading --student-version`"]
    old = nbformat.read(committed, as_version=4)

    def key(nb):
        return [(c.cell_type, c.source, json.dumps(c.get("metadata", {}).get("nbgrader", {}), sort_keys=True))
                for c in nb.cells]

    a, b = key(old), key(fresh)
    if a == b:
        return []
    first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return [f"{rel} is out of sync with {Path(source).name} (first difference at cell {first}; "
            f"{len(a)} vs {len(b)} cells); run `python -m course_utils.grading --student-version`"]


# ---------------------------------------------------------------- grading

@dataclass
class Result:
    """The grade of one submission (one CSV row)."""

    student: str
    parts: dict[str, float]
    total: float
    max: float
    status: str  # graded | timeout | error | missing
    notes: str = ""
    seconds: float = 0.0
    key: str = ""
    cached: bool = field(default=False, compare=False)


def prepare_template(source: Path, work: Path, assignment: str = ASSIGNMENT) -> Path:
    """An nbgrader course folder with ``source/``, ``release/`` and a gradebook that knows the
    assignment's cells; rebuilt only when the source notebook changes. Returns its path."""
    source = Path(source).resolve()
    digest = _sha256(source.read_bytes())[:16]
    template = Path(work) / f"template-{digest}"
    if (template / "gradebook.db").exists() and (template / "release").exists():
        return template
    tmp = Path(work) / f"template-{digest}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _generate(source, tmp, assignment, nbgrader_env())
    shutil.rmtree(template, ignore_errors=True)
    tmp.rename(template)
    return template


def _find_notebook(folder: Path, name: str) -> tuple[Path | None, str]:
    wanted = folder / f"{name}.ipynb"
    if wanted.exists():
        return wanted, ""
    found = sorted(p for p in folder.glob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    if len(found) == 1:
        return found[0], f"notebook was named {found[0].name!r}, graded as {name}.ipynb"
    if not found:
        return None, f"no notebook in the submission folder (expected {name}.ipynb)"
    return None, f"{len(found)} notebooks and none named {name}.ipynb: {', '.join(p.name for p in found[:5])}"


def _failure_notes(graded_nb: Path, parts: dict[str, float], scores: dict[str, float], cell_timeout: float) -> list[str]:
    """Why points were lost: the error of each failed test cell, and any cell cut by the time limit."""
    notes = []
    try:
        nb = nbformat.read(graded_nb, as_version=4)
    except Exception:
        return notes
    for index, cell in enumerate(nb.cells):
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if any(e.get("ename") == "CellTimeoutError" for e in errors):
            notes.append(f"cell {index} stopped after the {cell_timeout:g} s per-cell time limit")
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if gid in parts and scores.get(gid, 0) < parts[gid] and errors:
            e = errors[-1]
            text = f"{e.get('ename', 'Error')}: {e.get('evalue', '')}".strip().rstrip(":")
            notes.append(f"{gid}: {' '.join(text.split())[:160]}")
        if "was missing from the submission" in cell.get("source", "") and gid:
            notes.append(f"{gid}: the cell had been deleted; the grader put it back")
    return notes


def grade_submission(submission: Path | None, student: str, template: Path, work: Path,
                     cell_timeout: float = 600, notebook_timeout: float = 1800,
                     env: dict[str, str] | None = None, assignment: str = ASSIGNMENT,
                     name: str = NOTEBOOK, note: str = "") -> Result:
    """Autograde one submission in its own nbgrader course folder ``work/students/<student>``.

    Never raises for a bad submission: a notebook that cannot be read, raises, loops or is missing
    gets the points it earned (zero when nothing could run) and a reason in ``notes``.
    """
    parts = graded_parts(template / "source" / assignment / f"{name}.ipynb")
    total_max = sum(parts.values())
    zero = {k: 0.0 for k in parts}
    if submission is None:
        return Result(student, zero, 0.0, total_max, "missing", note)
    course = Path(work) / "students" / student
    shutil.rmtree(course, ignore_errors=True)
    (course / "submitted" / student / assignment).mkdir(parents=True)
    shutil.copytree(template / "source", course / "source")
    shutil.copy(template / "gradebook.db", course / "gradebook.db")
    shutil.copy(submission, course / "submitted" / student / assignment / f"{name}.ipynb")
    args = _nbgrader("autograde", assignment, f"--student={student}", f"--CourseDirectory.root={course}",
                     "--force", "--create", f"--Execute.timeout={int(cell_timeout)}",
                     "--OverwriteCells.add_missing_cells=True")
    rc, seconds = _run(args, course, env or nbgrader_env(), notebook_timeout, course / "autograde.log")
    notes = [note] if note else []
    if rc is None:
        notes.append(f"the notebook did not finish within the {notebook_timeout:g} s limit and was stopped")
        return Result(student, zero, 0.0, total_max, "timeout", "; ".join(notes), seconds)
    graded_nb = course / "autograded" / student / assignment / f"{name}.ipynb"
    scores: dict[str, float] | None = None
    if rc == 0 and graded_nb.exists():
        out = course / "parts.csv"
        plugin = PartsExportPlugin(to=str(out), student=[student], assignment=[assignment])
        from nbgrader.api import Gradebook

        with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
            plugin.export(gb)
        with open(out, newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if r["student"] == student]
        if rows:
            scores = {k: float(rows[0].get(k) or 0.0) for k in parts}
    if scores is None:
        log = (course / "autograde.log").read_text(errors="replace")
        reason = next((line.strip() for line in reversed(log.splitlines()) if "ERROR" in line or "Error" in line),
                      log.strip().splitlines()[-1] if log.strip() else "nbgrader failed")
        notes.append(f"nbgrader could not grade the notebook: {reason[:200]}")
        return Result(student, zero, 0.0, total_max, "error", "; ".join(notes), seconds)
    notes += _failure_notes(graded_nb, parts, scores, cell_timeout)
    total = round(sum(scores.values()), 6)
    return Result(student, scores, total, total_max, "graded", "; ".join(notes), seconds)


def _grade_task(args: dict) -> Result:
    return grade_submission(**args)


def grade_folder(submissions: Path, out: Path | None = None, source: Path = SOURCE, workers: int | None = None,
                 cell_timeout: float = 600, notebook_timeout: float = 1800, fast: bool = False,
                 online: bool = False, work: Path | None = None, force: bool = False,
                 assignment: str = ASSIGNMENT, verbose: bool = True) -> list[Result]:
    """Grade every ``submissions/<student_id>/`` folder; write the CSV to ``out`` if given.

    workers: parallel nbgrader processes (default: half the CPU cores, at least 1); each notebook
    kernel gets ``OMP_NUM_THREADS = cores // workers``. fast/online set COURSE_FAST / COURSE_OFFLINE
    for the graded notebooks (default: full mode, offline). Results whose key (submission bytes,
    source bytes, settings) is unchanged since the last run are reused unless ``force``.
    Returns the results sorted by student id.
    """
    submissions, source = Path(submissions).resolve(), Path(source).resolve()
    if not submissions.is_dir():
        raise FileNotFoundError(f"{submissions} is not a folder; expected SUBMISSIONS_DIR/<student_id>/<notebook>.ipynb.")
    name = source.stem
    work = Path(work) if work is not None else (Path(out).resolve().parent if out else submissions.parent) / ".nbgrader_work"
    work = work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    workers = max(1, workers or cores // 2)
    env = nbgrader_env({
        "COURSE_FAST": "1" if fast else "0", "COURSE_OFFLINE": "0" if online else "1",
        "TQDM_DISABLE": "1", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": str(max(1, cores // workers)),
        "NO_ALBUMENTATIONS_UPDATE": "1", "PYTHONWARNINGS": "ignore",
        **({} if online else {"HF_HUB_OFFLINE": "1"}),
    })
    template = prepare_template(source, work, assignment)
    if "get_voc" in source.read_text():
        _prepare_data(env, work)
    settings = json.dumps([GRADER_VERSION, fast, online, cell_timeout, notebook_timeout, assignment])
    source_bytes = source.read_bytes()
    students = sorted(p for p in submissions.iterdir() if p.is_dir() and not p.name.startswith("."))
    cache_dir = work / "results"
    cache_dir.mkdir(exist_ok=True)
    results: list[Result] = []
    todo: list[tuple[dict, Path, str]] = []
    for folder in students:
        path, note = _find_notebook(folder, name)
        key = _sha256(source_bytes, settings.encode(), path.read_bytes() if path else b"<missing>", note.encode())
        cached = cache_dir / f"{folder.name}.json"
        if not force and cached.exists():
            data = json.loads(cached.read_text())
            if data.get("key") == key:
                results.append(Result(**{**data, "cached": True}))
                continue
        todo.append((dict(submission=path, student=folder.name, template=template, work=work,
                          cell_timeout=cell_timeout, notebook_timeout=notebook_timeout, env=env,
                          assignment=assignment, name=name, note=note), cached, key))
    if verbose:
        print(f"{len(students)} submissions: {len(results)} unchanged since the last run, "
              f"{len(todo)} to grade with {workers} worker(s)", flush=True)
    # Threads only wait: each grade runs in its own nbgrader process (and kernel) with its own limits.
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(_grade_task, args): (cached, key) for args, cached, key in todo}
        for future in concurrent.futures.as_completed(futures):
            cached, key = futures[future]
            result = future.result()
            result.key = key
            data = asdict(result)
            data.pop("cached")
            cached.write_text(json.dumps(data, indent=1))
            results.append(result)
            if verbose:
                print(f"  {result.student}: {result.total:g}/{result.max:g} ({result.status}, "
                      f"{result.seconds:.0f} s){' - ' + result.notes if result.notes else ''}", flush=True)
    results.sort(key=lambda r: r.student)
    if out is not None:
        write_csv(results, Path(out), list(graded_parts(source)))
        if verbose:
            print(f"wrote {out}", flush=True)
    return results


def _prepare_data(env: dict[str, str], work: Path) -> None:
    """Create the dataset once before the workers start, so parallel notebooks do not race to write it."""
    code = ("from course_utils import data\n"
            "if hasattr(data, 'get_voc'):\n    data.get_voc()\n")
    rc, _ = _run([sys.executable, "-c", code], work, env, timeout=1800, log=work / "prepare_data.log")
    if rc != 0:  # not fatal: each notebook will report its own data problem
        print(f"warning: preparing the dataset failed; see {work / 'prepare_data.log'}", file=sys.stderr)


def write_csv(results: list[Result], out: Path, part_names: list[str]) -> None:
    """The gradebook: student, one column per part, total, max, status, notes (sorted by student)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["student", *part_names, "total", "max", "status", "notes"])
        for r in sorted(results, key=lambda r: r.student):
            writer.writerow([r.student, *[f"{r.parts.get(p, 0.0):g}" for p in part_names],
                             f"{r.total:g}", f"{r.max:g}", r.status, r.notes])


class PartsExportPlugin(_ExportPlugin):
    """nbgrader export plugin: one CSV row per (student, assignment) with the points of each graded cell.

    Also usable in an ordinary nbgrader course::

        nbgrader export --exporter=course_utils.grading.PartsExportPlugin --to parts.csv
    """

    def export(self, gradebook) -> None:  # gradebook: nbgrader.api.Gradebook
        dest = self.to or "parts.csv"
        wanted_students = {str(s) for s in self.student}
        wanted_assignments = {str(a) for a in self.assignment}
        rows, columns = [], []
        for assignment in gradebook.assignments:
            if wanted_assignments and assignment.name not in wanted_assignments:
                continue
            names = [g.name for nb in assignment.notebooks for g in nb.grade_cells]
            columns += [n for n in names if n not in columns]
            for student in gradebook.students:
                if wanted_students and student.id not in wanted_students:
                    continue
                row = {"student": student.id, "assignment": assignment.name}
                try:
                    submission = gradebook.find_submission(assignment.name, student.id)
                except Exception:  # MissingEntry: no submission
                    continue
                for nb in submission.notebooks:
                    for grade in nb.grades:
                        row[grade.name] = grade.score
                row["total"], row["max"] = submission.score, submission.max_score
                rows.append(row)
        with open(dest, "w", newline="") as fh:
            writer = csv.DictWriter(fh, ["student", "assignment", *columns, "total", "max"])
            writer.writeheader()
            writer.writerows(rows)


# ---------------------------------------------------------------- command line

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_utils.grading", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("submissions", nargs="?", type=Path, help="folder of <student_id>/<notebook>.ipynb")
    parser.add_argument("--out", type=Path, default=Path("grades.csv"), help="gradebook CSV (default grades.csv)")
    parser.add_argument("--source", type=Path, default=SOURCE, help="solution source notebook")
    parser.add_argument("--workers", type=int, default=None, help="parallel graders (default: half the cores)")
    parser.add_argument("--cell-timeout", type=float, default=600, help="seconds per cell (default 600)")
    parser.add_argument("--notebook-timeout", type=float, default=1800, help="seconds per notebook (default 1800)")
    parser.add_argument("--fast", action="store_true", help="grade in fast mode (COURSE_FAST=1)")
    parser.add_argument("--online", action="store_true", help="let notebooks download data and weights")
    parser.add_argument("--work", type=Path, default=None, help="work folder (default .nbgrader_work next to --out)")
    parser.add_argument("--force", action="store_true", help="re-grade every submission, changed or not")
    parser.add_argument("--student-version", action="store_true", help="regenerate notebooks/student/ from the source")
    parser.add_argument("--check-student-version", action="store_true", help="exit 1 if the student version is stale")
    args = parser.parse_args(argv)
    if args.student_version:
        generate_student_version(args.source, STUDENT)
        print(f"wrote {STUDENT.relative_to(ROOT)}")
        return 0
    if args.check_student_version:
        problems = student_version_problems(STUDENT, args.source)
        print("\n".join(problems) or "student version is up to date")
        return 1 if problems else 0
    if args.submissions is None:
        parser.error("give SUBMISSIONS_DIR (or --student-version / --check-student-version)")
    results = grade_folder(args.submissions, args.out, args.source, args.workers, args.cell_timeout,
                           args.notebook_timeout, args.fast, args.online, args.work, args.force)
    graded = sum(r.status == "graded" for r in results)
    print(f"{graded}/{len(results)} graded; mean total {sum(r.total for r in results) / max(1, len(results)):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
