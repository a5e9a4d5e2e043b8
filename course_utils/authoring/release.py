"""Write the student-facing course (the public release) from this instructor repository.

Usage (from the repository root)::

    python -m course_utils.authoring.release DEST [--repo OWNER/NAME]
    make release DEST=../course-release [REPO=OWNER/NAME]

The workflow: the instructor keeps THIS repository (solution source, hidden tests, grader) private and
publishes DEST as the public repository students clone and open on Colab. The release holds every file
of this checkout (tracked, or new and not ignored by git) except what would give solutions away or
only serves grading:

- the exercise's solution source (:data:`.exercise.SOURCE`); the student version stays where students
  open it, ``notebooks/student/``;
- the grading tools (:data:`INSTRUCTOR_MODULES`), every ``course_utils`` module that imports one of them,
  and every test file that imports one of those or the exercise's source;
- the parts of ``README.md``, the ``Makefile`` and ``.ci/run`` between ``instructor-only`` markers.

Its Colab badges and setup cells point at ``--repo`` (default: ``GITHUB_REPO`` of
:mod:`.conventions`, which the release's copy of that file is rewritten to), so the setup cell never
clones a repository that holds solutions. Before it writes anything, the tool checks that the committed
student version is in sync with the source; afterwards, :func:`release_problems` checks the release:
no solution marker, no hidden-test text, no solution block and no copy of the source file anywhere.
The release's own ``make test`` passes (the lead runs it once per release: see the README).
"""
from __future__ import annotations

import argparse
import ast
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

from .conventions import GITHUB_REPO
from .exercise import ROOT, SOURCE, STUDENT

INSTRUCTOR_MODULES = ("grading", "grader_kernel", "kernel_guard", "sandbox", "submission_checks",
                      "nbgrader_release", "student_version", "release", "judge", "phase1", "phase1_driver",
                      "similarity")
"""Modules of ``course_utils.authoring`` that only serve the instructor (grading, the student version).
A module that reads the solution source (``exercise.SOURCE``) is one too; ``exercise`` itself (names and
paths) stays."""
INSTRUCTOR_TESTS = ("tests/test_grading*.py", "tests/test_release*.py", "tests/test_exercise*.py",
                    "tests/test_student_version*.py")
MARKERS = (  # <!-- >>> instructor-only ... --> ... <!-- <<< instructor-only --> (also inline), and # lines
    re.compile(r"<!-- *>>> *instructor-only.*?<!-- *<<< *instructor-only[^>]*-->(?:[ \t]*\n(?=\s*\n))?", re.DOTALL),
    re.compile(r"^[ \t]*# *>>> *instructor-only[^\n]*\n.*?^[ \t]*# *<<< *instructor-only[^\n]*\n?", re.DOTALL | re.M),
)
FORBIDDEN = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")


def checkout_files(root: Path = ROOT) -> list[str]:
    """The files of the checkout: git's tracked files plus new ones it does not ignore (relative paths);
    without git, every file outside ``.git``, virtual environments, ``data/`` and caches."""
    try:
        out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=root,
                             capture_output=True, check=True, timeout=60).stdout.decode()
        return sorted(p for p in set(out.split("\0")) if p and (root / p).is_file())
    except (OSError, subprocess.SubprocessError):
        skip = {".git", ".venv", "data", "__pycache__", ".pytest_cache", ".ipynb_checkpoints", ".nbgrader_work"}
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                      if p.is_file() and not skip & set(p.relative_to(root).parts)) + (
            ["data/README.md"] if (root / "data" / "README.md").exists() else [])


def _module_imports(path: Path) -> set[str]:
    """Every ``course_utils`` module (dotted, without the package) that the file imports."""
    try:
        tree = ast.parse(path.read_text())
    except (SyntaxError, UnicodeDecodeError):
        return set()
    rel = path.with_suffix("").parts
    package = list(rel[rel.index("course_utils") + 1:-1]) if "course_utils" in rel else []
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".", 1)[1] for a in node.names if a.name.startswith("course_utils.")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                parts = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "course_utils":
                parts = node.module.split(".")[1:]
            else:
                continue
            found.add(".".join(parts))
            found |= {".".join(parts + [a.name]) for a in node.names}
    return found


def instructor_only(files: list[str], root: Path = ROOT) -> set[str]:
    """The files the release leaves out (see the module docstring)."""
    dropped = {SOURCE.resolve().relative_to(root.resolve()).as_posix()} if SOURCE.exists() else set()
    modules = {f"authoring.{m}" for m in INSTRUCTOR_MODULES} | {"authoring.exercise.SOURCE"}

    def needs_dropped(f: str) -> bool:
        return bool(_module_imports(root / f) & modules) or "exercise.SOURCE" in (root / f).read_text(errors="replace")

    py = {f: f[len("course_utils/"):-3].replace("/", ".") for f in files
          if f.startswith("course_utils/") and f.endswith(".py")}
    changed = True
    while changed:  # a module that imports a dropped one (or reads the solution source) is dropped too
        changed = False
        for f, name in py.items():
            if name not in modules and name != "authoring.exercise" and needs_dropped(f):
                modules.add(name)
                changed = True
    dropped |= {f for f, name in py.items() if name in modules}
    for f in files:
        if any(Path(f).match(pattern) for pattern in INSTRUCTOR_TESTS):
            dropped.add(f)
        elif f.startswith("tests/") and f.endswith(".py") and needs_dropped(f):
            dropped.add(f)
    return dropped


def _lines(text: str) -> str:
    """``text`` with each line stripped and blank lines dropped (so indentation does not hide a copy)."""
    return "\n".join(line.strip() for line in text.splitlines() if line.strip())


def hidden_test_lines(source: nbformat.NotebookNode, student: nbformat.NotebookNode) -> set[str]:
    """Snippets of the source's hidden tests: each pair of consecutive lines of a hidden block (a block of
    one line: that line), as :func:`_lines` writes them, that the student version does not contain. One
    line alone can be common code (``g = torch.Generator().manual_seed(0)``); two in a row are the test."""
    handed_out = "\n".join(_lines(c.source) for c in student.cells)
    found = set()
    for cell in source.cells:
        for block in re.findall(r"BEGIN HIDDEN TESTS[^\n]*\n(.*?)\n[^\n]*END HIDDEN TESTS", cell.source, re.DOTALL):
            lines = _lines(block).splitlines()
            snippets = ["\n".join(pair) for pair in zip(lines, lines[1:])] or lines
            found |= {s for s in snippets if len(s) >= 20 and s not in handed_out}
    return found


def solution_blocks(source: nbformat.NotebookNode) -> list[str]:
    """The text between each ``BEGIN SOLUTION`` and ``END SOLUTION`` of the source (normalised whitespace)."""
    blocks = []
    for cell in source.cells:
        for match in re.finditer(r"BEGIN SOLUTION[^\n]*\n(.*?)\n[^\n]*END SOLUTION", cell.source, re.DOTALL):
            text = " ".join(match.group(1).split())
            if len(text) >= 40:
                blocks.append(text)
    return blocks


def release_problems(dest: Path, source: Path = SOURCE, student: Path = STUDENT) -> list[str]:
    """Everything in the release at ``dest`` that gives solutions away (empty: nothing found)."""
    src = nbformat.read(source, as_version=4)
    hidden = hidden_test_lines(src, nbformat.read(student, as_version=4))
    blocks = solution_blocks(src)
    source_hash = hashlib.sha256(Path(source).read_bytes()).hexdigest()
    problems = []
    for path in sorted(p for p in Path(dest).rglob("*") if p.is_file() and ".git" not in p.parts):
        rel = path.relative_to(dest).as_posix()
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() == source_hash:
            problems.append(f"{rel} is a copy of the solution source {Path(source).name}")
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if path.suffix == ".ipynb":  # notebook sources are lists of lines in the JSON: read the cells
            try:
                text = "\n".join(c.source for c in nbformat.reads(text, as_version=4).cells)
            except Exception:
                pass
        for marker in FORBIDDEN:
            if marker in text:
                problems.append(f"{rel} contains {marker!r}")
        stripped = _lines(text)
        leaked = sorted(snippet for snippet in hidden if snippet in stripped)
        if leaked:
            problems.append(f"{rel} contains {len(leaked)} snippet(s) of the hidden tests, e.g. {leaked[0][:80]!r}")
        flat = " ".join(text.split())
        if any(block in flat for block in blocks):
            problems.append(f"{rel} contains a solution block of {Path(source).name}")
    return problems


def write_release(dest: Path, repo: str = GITHUB_REPO, root: Path = ROOT) -> list[str]:
    """Write the release into ``dest`` (which must not exist or be empty); returns the files left out."""
    from .student_version import student_version_problems

    dest = Path(dest).resolve()
    if dest.exists() and any(dest.iterdir()):
        raise FileExistsError(f"{dest} is not empty: give a new folder (the release is written from scratch)")
    if root.resolve() in (dest, *dest.parents):
        raise ValueError(f"{dest} is inside the repository; write the release outside it")
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo):
        raise ValueError(f"--repo must look like OWNER/NAME, got {repo!r}")
    stale = student_version_problems()
    if stale:
        raise RuntimeError("the student version is out of date, so the release would be too: " + "; ".join(stale))
    files = checkout_files(root)
    dropped = instructor_only(files, root)
    for rel in files:
        if rel in dropped:
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target)
    for rel in ("README.md", "Makefile", ".ci/run"):
        if (dest / rel).exists():
            text = (dest / rel).read_text()
            for pattern in MARKERS:
                text = pattern.sub("", text)
            (dest / rel).write_text(text)
    conventions = dest / "course_utils" / "authoring" / "conventions.py"
    text = conventions.read_text()
    new = re.sub(r'^GITHUB_REPO = "[^"]*"', f'GITHUB_REPO = "{repo}"', text, count=1, flags=re.M)
    if new == text and repo != GITHUB_REPO:
        raise RuntimeError("could not find the GITHUB_REPO line in conventions.py")
    conventions.write_text(new)
    if "README.md" in files and repo != GITHUB_REPO:  # the README's badges too
        readme = dest / "README.md"
        readme.write_text(readme.read_text().replace(f"github/{GITHUB_REPO}/", f"github/{repo}/"))
    env = {**os.environ, "PYTHONPATH": str(dest)}
    subprocess.run([sys.executable, "-m", "course_utils.authoring.conventions"], cwd=dest, env=env, check=True,
                   capture_output=True, timeout=300)  # badges and setup cells for the release's repository
    problems = release_problems(dest)
    if problems:
        raise RuntimeError("the release would give solutions away:\n  " + "\n  ".join(problems))
    return sorted(dropped)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_utils.authoring.release", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dest", type=Path, help="a new folder for the release (outside this repository)")
    parser.add_argument("--repo", default=GITHUB_REPO, help="OWNER/NAME of the public release repository "
                        "(default %(default)s)")
    args = parser.parse_args(argv)
    dropped = write_release(args.dest, args.repo)
    print(f"wrote the release to {args.dest} for github.com/{args.repo}; left out {len(dropped)} file(s):")
    for rel in dropped:
        print(f"  {rel}")
    print("checked: no solution marker, hidden test, solution block or copy of the source in it. Next: run its "
          "own tests (cd DEST && make test), then push it to the public repository.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
