"""The course's notebook conventions: one Colab badge and one setup cell for all, and a checker.

Usage (from the repository root)::

    python -m course_utils.authoring.conventions            # refresh badge + setup cell in every notebook
    python -m course_utils.authoring.conventions --check    # exit 1 if any notebook breaks a convention

The repository address lives here, in ``GITHUB_REPO``: a fork changes it once and reruns the tool.
It is the PUBLIC repository students open (the student release, see :mod:`.release`), never the
instructor's repository that holds the solutions: the setup cell clones it on Colab.
Executing notebooks is :mod:`course_utils.authoring.execute`.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

from ..core import repo_root
from .prose_numbers import cross_notebook_claims, stale_numbers

GITHUB_REPO = "cnn-seg-course/2d-cnns-semantic-segmentation"  # the public release; `release --repo` rewrites it
BRANCH = "main"
REPO_NAME = GITHUB_REPO.split("/")[1]

SETUP_MARKER = "# Standard setup cell"
SETUP_SOURCE = f"""{SETUP_MARKER} (written by `python -m course_utils.authoring.conventions`; edit it there).
# On Colab it fetches the course once (torch stays Colab's own); everywhere it seeds and reports.
import os, sys
if "google.colab" in sys.modules and not os.path.isdir("/content/{REPO_NAME}"):
    !git clone -q --depth 1 https://github.com/{GITHUB_REPO} /content/{REPO_NAME}
    %pip install -q -e /content/{REPO_NAME}
if "google.colab" in sys.modules and "/content/{REPO_NAME}" not in sys.path:
    sys.path.insert(0, "/content/{REPO_NAME}")
import course_utils as cu
DEVICE = cu.setup()"""

BADGE_RE = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)")


def colab_url(relpath: str) -> str:
    """Colab link that opens ``relpath`` (e.g. "notebooks/00_start_here.ipynb") from GitHub."""
    return f"https://colab.research.google.com/github/{GITHUB_REPO}/blob/{BRANCH}/{relpath}"


def badge(relpath: str) -> str:
    """Markdown of the "Open In Colab" badge for the notebook at ``relpath`` (relative to the repo root)."""
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_url(relpath)})"


# ------------------------------------------------------------------------------------- figure alt text

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
GENERIC_ALTS = {"figure", "image", "img", "picture", "plot", "graph", "chart", "output", "png", "photo", "alt",
                "todo", "tbd", "fig", "result", "results", "diagram", "screenshot", "matplotlib figure"}
"""Alt texts that say nothing about what a figure shows (compared without articles, case and punctuation)."""
MIN_ALT_WORDS = 4
"""A figure's alt text says what it shows (and its result): fewer words than this cannot."""


def figure_alt(cell: nbformat.NotebookNode) -> str | None:
    """The alt text of a code cell's figures: its metadata ``mystnb.image.alt`` (what the website renders
    as each figure's ``<img alt>``), or None."""
    alt = cell.get("metadata", {}).get("mystnb", {}).get("image", {}).get("alt")
    return alt if isinstance(alt, str) else None


def alt_problem(alt: str | None, min_words: int = 1) -> str | None:
    """What is wrong with ``alt`` as an image's text alternative, or None if nothing is: missing or empty,
    a file name or path (what Sphinx writes when there is none: ``../_images/0d47….png``), generic
    ("figure", "a plot"), or fewer than ``min_words`` words."""
    if alt is None or not alt.strip():
        return "no alt text"
    text = alt.strip()
    if not re.search(r"\s", text) and (re.search(r"\.(png|jpe?g|gif|svg|webp)$", text, re.I) or "/" in text
                                        or "\\" in text or re.fullmatch(r"[0-9a-f]{16,}", text, re.I)):
        return f"a file name as alt text ({text[:60]!r})"
    words = re.sub(r"^(a|an|the)\s+", "", re.sub(r"[^\w\s]", " ", text.lower()).strip()).split()
    if " ".join(words) in GENERIC_ALTS or (len(words) == 2 and words[0] in {"my", "this", "output", "figure"}):
        return f"a generic alt text ({text!r}) that does not say what the image shows"
    if len(text.split()) < min_words:
        return f"alt text too short to say what the figure shows ({text!r}: under {min_words} words)"
    return None


def widget_models(models: dict, model_id: str) -> list[dict]:
    """The saved widget model ``model_id`` and its children's models, depth first (``IPY_MODEL_<id>``
    references); ``models`` is the notebook's saved widget state (model id -> model)."""
    model = models.get(model_id)
    if model is None:
        return []
    found = [model]
    for child in model.get("state", {}).get("children", []):
        if isinstance(child, str) and child.startswith("IPY_MODEL_"):
            found += widget_models(models, child.removeprefix("IPY_MODEL_"))
    return found


def figure_count(cell: nbformat.NotebookNode, models: dict) -> int:
    """How many figures (``image/png``) a code cell shows: its own outputs, and those its widgets saved
    (the website shows a widget's saved figure in the widget's place)."""
    count = 0
    for output in cell.get("outputs", []):
        data = output.get("data", {})
        count += "image/png" in data
        if WIDGET_VIEW in data:
            count += sum("image/png" in saved.get("data", {})
                         for model in widget_models(models, data[WIDGET_VIEW].get("model_id", ""))
                         if model.get("model_name") == "OutputModel"
                         for saved in model.get("state", {}).get("outputs", []))
    return count


def figures_without_alt(nb: nbformat.NotebookNode) -> list[tuple[int, str]]:
    """(cell index, what is wrong) for every code cell that shows a figure without a real alt text in
    its metadata (``"mystnb": {"image": {"alt": "..."}}``; see :func:`alt_problem`)."""
    models = nb.get("metadata", {}).get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    found = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and figure_count(cell, models):
            problem = alt_problem(figure_alt(cell), MIN_ALT_WORDS)
            if problem and not figure_count(cell, {}):  # no figure of its own: the one its widget saved
                problem += " (the figure is the one its widget saved, which the website shows in its place)"
            if problem:
                found.append((index, problem))
    return found


# ------------------------------------------------------------------------------------- colour maps

UNSAFE_CMAPS = {"jet", "rainbow", "gist_rainbow", "hsv", "nipy_spectral", "gist_ncar", "gist_stern", "prism",
                "flag", "turbo", "Spectral", "spectral", "RdYlGn", "brg", "CMRmap"}
"""Colour maps whose colours colour-blind readers cannot tell apart (rainbows, red-green): use viridis,
magma, cividis or gray for values, a diverging blue-red (coolwarm, RdBu) around zero, and for classes a
palette with the classes labelled (a legend or text), so that colour is not the only cue."""
_CMAP_RE = re.compile(r"""(?:cmap\s*=\s*|get_cmap\(\s*|colormaps\[\s*|\bcm\.)(["']?)([A-Za-z_]+)\1""")


def unsafe_colour_maps(source: str) -> list[str]:
    """The colour maps in ``UNSAFE_CMAPS`` (or their reversed ``_r``) that the code ``source`` names:
    ``cmap="jet"``, ``plt.get_cmap("hsv")``, ``matplotlib.colormaps["turbo"]``, ``cm.jet``."""
    return [name for _, name in _CMAP_RE.findall(source) if name.removesuffix("_r") in UNSAFE_CMAPS]


def relpath_of(path: Path, root: Path) -> str:
    return Path(path).resolve().relative_to(root.resolve()).as_posix()


def refresh(nb: nbformat.NotebookNode, relpath: str) -> bool:
    """Put the right badge in the first (title) cell and the standard setup cell first among code cells.

    Returns True if the notebook changed.
    """
    changed = False
    if not nb.cells or nb.cells[0].cell_type != "markdown":
        raise ValueError(f"{relpath}: the first cell must be a markdown cell starting with '# Title'.")
    title = nb.cells[0]
    want = badge(relpath)
    if BADGE_RE.search(title.source):
        new = BADGE_RE.sub(want, title.source)
    else:
        lines = title.source.split("\n")
        new = "\n".join([lines[0], "", want] + lines[1:])
    if new != title.source:
        title.source, changed = new, True
    code = [c for c in nb.cells if c.cell_type == "code"]
    setup = [c for c in code if c.source.startswith(SETUP_MARKER)]
    if setup:
        if setup[0].source != SETUP_SOURCE:
            setup[0].source, changed = SETUP_SOURCE, True
    else:
        cell = nbformat.v4.new_code_cell(SETUP_SOURCE)
        index = nb.cells.index(code[0]) if code else len(nb.cells)
        nb.cells.insert(index, cell)
        changed = True
    return changed


ABS_PATH_RE = re.compile(r"/(work|root|home|tmp|Users)/[A-Za-z]")
MAX_BYTES = 3_000_000
TEXT_MIMES = {"text/plain"}
"""What a checked cell may show: plain text (a figure or a widget differs between backends and front ends)."""
REQUIRED_HEADINGS = ("Learning goals", "Try it", "Summary")


def problems(path: Path, root: Path) -> list[str]:
    """Everything in the notebook at ``path`` that breaks the course conventions (empty = fine).

    Checks: valid nbformat; a markdown title cell with the Colab badge for its own path; the
    standard setup cell; "Learning goals", "Try it" and "Summary" headings; executed and committed
    outputs (every code cell has an execution count, except in generated student versions under
    ``notebooks/student/``, which are handed out blank); no stored errors; under 3 MB; no absolute
    machine paths in sources or outputs; checked cells (``# NBVAL_CHECK_OUTPUT``) print text only;
    every measured number in the prose is one the notebook shows (:mod:`.prose_numbers`; student
    versions are generated from a source that is checked, and have no outputs to compare with); no
    markdown sentence quotes another notebook's measured result or verdict that this notebook does not
    print (:func:`.prose_numbers.cross_notebook_claims`); every figure, a widget's saved one included,
    has a real alt text in its cell's metadata (:func:`figures_without_alt`); no code cell names a colour
    map that colour-blind readers cannot read (:func:`unsafe_colour_maps`).
    """
    rel = relpath_of(path, root)
    found: list[str] = []
    size = Path(path).stat().st_size
    if size > MAX_BYTES:
        found.append(f"{rel}: {size / 1e6:.1f} MB, over the 3 MB limit (smaller figures, fewer stored images)")
    try:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
    except Exception as exc:  # nbformat raises several error types
        return found + [f"{rel}: not a valid notebook ({exc.__class__.__name__}: {str(exc)[:200]})"]
    if not nb.cells or nb.cells[0].cell_type != "markdown" or not nb.cells[0].source.startswith("# "):
        found.append(f"{rel}: the first cell must be a markdown title ('# ...')")
    elif badge(rel) not in nb.cells[0].source:
        found.append(f"{rel}: the title cell lacks the Colab badge for its own path; run `python -m course_utils.authoring.conventions`")
    if not any(c.cell_type == "code" and c.source == SETUP_SOURCE for c in nb.cells):
        found.append(f"{rel}: no standard setup cell (or an edited one); run `python -m course_utils.authoring.conventions`")
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    for heading in REQUIRED_HEADINGS:
        if not re.search(rf"^#+ .*{heading}", markdown, flags=re.MULTILINE | re.IGNORECASE):
            found.append(f"{rel}: no '{heading}' heading")
    for index, cell in enumerate(nb.cells):
        if ABS_PATH_RE.search(cell.source):
            found.append(f"{rel}: cell {index} source holds an absolute machine path")
        if cell.cell_type != "code":
            continue
        if cell.source.strip() and cell.execution_count is None and "student" not in Path(rel).parts:
            found.append(f"{rel}: cell {index} was never executed (commit executed outputs)")
        if is_checked_cell(cell) and any(set(output.get("data", {})) - TEXT_MIMES
                                          for output in cell.get("outputs", [])):
            found.append(f"{rel}: cell {index} is checked by nbval (NBVAL_CHECK_OUTPUT) but shows a figure or widget; "
                         "a checked cell prints text only (move the plot to the next cell), so it passes under any "
                         "matplotlib backend")
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                found.append(f"{rel}: cell {index} stores an error output ({output.get('ename')})")
            text = output.get("text", "") or "".join(str(v) for k, v in output.get("data", {}).items()
                                                      if k.startswith("text/"))
            if ABS_PATH_RE.search(str(text)):
                found.append(f"{rel}: cell {index} output shows an absolute machine path")
    for index, cell in enumerate(nb.cells):
        for name in unsafe_colour_maps(cell.source) if cell.cell_type == "code" else []:
            found.append(f"{rel}: cell {index} uses the colour map {name!r}, which colour-blind readers cannot read; "
                         "use viridis, magma, cividis or gray for values, coolwarm/RdBu around zero, and for "
                         "classes a palette with the classes labelled (legend or text)")
    for index, problem in figures_without_alt(nb):
        found.append(f"{rel}: cell {index} shows a figure with {problem}; add to its metadata "
                     '"mystnb": {"image": {"alt": "<what the figure shows and, if it carries one, the result>"}} '
                     "(the website's text alternative for readers who cannot see it)")
    if "student" not in Path(rel).parts:
        for index, number in stale_numbers(nb):
            found.append(f"{rel}: cell {index} says {number.text!r}, which no output or code of this notebook shows: "
                         f"\"{number.sentence[:120]}\". Re-execute and update the sentence, print the figure from code, "
                         "or cite its source.")
        own = Path(rel).name.split("_")[0]  # "04", or "04b" for a notebook placed between two others
        for index, what, sentence in cross_notebook_claims(nb, own):
            found.append(f"{rel}: cell {index} quotes another notebook's result ({what}), which this notebook does "
                         f"not print: \"{sentence[:120]}\". Compute it here, or say what to look at there "
                         "without the result.")
    return found


def is_checked_cell(cell: nbformat.NotebookNode) -> bool:
    """True for a code cell whose first or last line is ``# NBVAL_CHECK_OUTPUT`` (nbval compares its output)."""
    lines = cell.source.strip().splitlines() if cell.cell_type == "code" else []
    return bool(lines) and "# NBVAL_CHECK_OUTPUT" in (lines[0].strip(), lines[-1].strip())


def notebook_paths(root: Path) -> list[Path]:
    return sorted(p for p in (root / "notebooks").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", type=Path, help="notebooks (default: all under notebooks/)")
    parser.add_argument("--check", action="store_true",
                        help="change nothing; report every convention problem and exit 1 if there is any")
    args = parser.parse_args(argv)
    root = repo_root()
    if root is None:
        parser.error("run this from a checkout of the course repository")
    paths = args.paths or notebook_paths(root)
    found = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        stale = refresh(nb, relpath_of(path, root))
        if args.check:
            found += [f"{relpath_of(path, root)}: badge or setup cell out of date; run "
                      "`python -m course_utils.authoring.conventions`"] if stale else []
            found += problems(path, root)
        elif stale:
            nbformat.write(nb, path)
            print(f"refreshed: {relpath_of(path, root)}")
    print("\n".join(found) or ("conventions: nothing to report" if args.check else ""), end="\n" if found or args.check else "")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
