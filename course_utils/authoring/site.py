"""The course as a website: the committed notebooks, rendered as they were executed (``make site``).

Usage (from the repository root, with the ``site`` extra installed: ``pip install -e .[site]``)::

    python -m course_utils.authoring.site                 # -> build/site/html, fails on any warning
    python -m course_utils.authoring.site --out DIR       # -> DIR/html (DIR/src: the staged sources)

Two steps, nothing executed:

1. **stage** writes Sphinx sources into a gitignored folder (``build/site/src``): ``conf.py``, a
   landing page (the README's introduction, the notebook table, how to run the course), a page for
   instructors (the README's section for them) and a copy of each notebook, in course order, at its
   repository path. The exercise is its student version (``notebooks/student/``); the solution source
   is never staged. Because the staged paths are the repository's, the theme's Colab launch button
   opens each notebook from GitHub. The copies are adapted for a static page, the committed notebooks
   are never touched:

   - the Colab badge (an image on colab.research.google.com) becomes a text link: a page must not
     fetch anything from another host, and the launch button does the same job;
   - a widget (``ipywidgets.interact``) cannot run without a kernel. Each widget view becomes a note
     saying that its controls work when the notebook runs, the controls drawn (disabled) at the
     values saved with the notebook, and the figure the notebook saved for those values. Without a
     saved state the note says only that the slider works when the notebook runs. No widget
     JavaScript is loaded;
   - MathJax 3 is copied from the ``sphinx-mathjax-offline`` package into ``_static/``: no CDN.

   Each figure's text alternative (its ``<img alt>``) is the alt text written in its cell's metadata,
   ``"mystnb": {"image": {"alt": "..."}}``, which myst-nb renders for every figure of the cell, a
   widget's saved figure included (the conventions check fails on a figure without one). Without it
   Sphinx would write the image's file name, which a screen reader reads out as a hash.

2. **build** runs ``sphinx-build -W --keep-going -n``: every warning fails the build, among them a
   missing image, a link to a page or section that does not exist and a skipped heading level. It
   then prints where the site is and how to view it.
"""
from __future__ import annotations

import argparse
import copy
import html
import importlib.metadata
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat

from ..core import repo_root
from .conventions import BADGE_RE, BRANCH, GITHUB_REPO, colab_url, widget_models
from .exercise import NOTEBOOK as EXERCISE

__all__ = ["course_notebooks", "notebook_title", "readme_summaries", "readme_section", "site_notebook",
           "static_widget", "stage", "build", "main", "WIDGET_NOTE_CLASS"]

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_NOTE_CLASS = "widget-static-note"
"""CSS class of the note that stands in for a widget on the site (the browser tests look for it)."""
PROJECT = "2D CNNs and Semantic Segmentation"
INSTRUCTORS_HEADING = "For instructors"
"""The README section (a ``## `` heading starting with this) that becomes the instructors page."""

CONF_PY = '''\
# Written by `python -m course_utils.authoring.site`: change it there, not here.
project = {project!r}
author = "the course authors"
copyright = "the course authors, MIT license"
extensions = ["myst_nb"]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]

# The notebooks are committed executed: render their stored outputs, never run them.
nb_execution_mode = "off"
nb_merge_streams = True
nb_ipywidgets_js = {{}}                   # widgets were made static at staging: no widget JavaScript
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3                 # [text](#a-section-title) links resolve (and fail when stale)
nitpicky = True                          # with sphinx-build -W -n: any warning fails the build

html_theme = "sphinx_book_theme"
html_title = project
html_static_path = ["_static"]
html_css_files = ["course.css"]
html_theme_options = {{
    "repository_url": "https://github.com/{repo}",
    "repository_branch": {branch!r},
    "path_to_docs": "",                  # staged paths are repository paths: the Colab link is the notebook's
    "launch_buttons": {{"colab_url": "https://colab.research.google.com"}},
    "use_repository_button": True,
    "use_download_button": False,        # it would link _sources/, which is not copied (below)
    "home_page_in_toc": True,
    "show_navbar_depth": 1,
}}
# pydata-sphinx-theme logs a console error on a first visit unless a colour mode is set; light
# also suits the notebooks' matplotlib figures.
html_context = {{"default_mode": "light"}}
html_copy_source = False                 # the notebooks again, doubling the site's size
html_show_sourcelink = False
mathjax_path = "mathjax/tex-chtml.js"    # MathJax 3 in _static, copied at staging: no CDN
# Screen readers read the formulas: MathJax adds hidden MathML to each (its default, said here on purpose)
mathjax3_config = {{"options": {{"enableAssistiveMml": True}}}}
'''

COURSE_CSS = f"""\
.{WIDGET_NOTE_CLASS} {{ border-left: 4px solid var(--pst-color-primary); padding: .3em .8em; margin: .5em 0; }}
.{WIDGET_NOTE_CLASS} .controls {{ display: grid; grid-template-columns: max-content 14em max-content;
  gap: .2em .8em; align-items: center; margin: .4em 0; }}
.{WIDGET_NOTE_CLASS} input[type=range], .{WIDGET_NOTE_CLASS} select {{ width: 100%; }}
div.math {{ overflow-x: auto; }}
/* Focus visible (WCAG 2.4.7): sphinx-book-theme takes the focus ring off the article header's buttons
   (the sidebar toggle, the repository link, the launch menu) and its menu items show none: the theme's ring. */
.bd-header-article .btn:focus-visible, .bd-header-article .dropdown-item:focus-visible {{
  outline: var(--pst-color-accent) solid .1875rem; outline-offset: .1875rem; }}
"""

HOW_TO_RUN = f"""\
## How to run it

Nothing runs on this site: each page shows a notebook as it was executed and committed to the
[repository](https://github.com/{GITHUB_REPO}). To run one:

- **Colab**: use the launch button at the top of its page (the rocket, then "Colab"). The notebook's
  first code cell installs the course package. Use a GPU runtime for notebooks 11 and 12.
- **Your machine** (Linux, Python 3.10+, `make`): clone the repository, then `make lab` sets up a
  virtual environment and opens JupyterLab on the notebooks; `make test` runs every unit test and
  every notebook.
- **Conda on a GPU lab machine**: `conda env create -f environment.yml`, `conda activate cnn-seg`,
  `jupyter lab notebooks/`.

The sliders and menus in the notebooks work when a notebook runs. Here they are drawn at the values
saved with the notebook, next to the figure saved for those values.
"""

SITE_SECTION = """\
## This website

It is built from the committed notebooks, without running them, by `make site`
(`python -m course_utils.authoring.site`); the README says how to view and publish it. The build
fails on any Sphinx warning. The site shows the student version of the exercise only; the tests
(`tests/test_site_browser.py`) check that no page or file of the site holds solution code.
"""


# ------------------------------------------------------------------------------------- notebooks

NUMBERED = re.compile(r"\d\d[a-z]?_")
"""A course notebook's name: its number (two digits, and a letter for one placed between two others, as
``04b_``), then ``_``. Names sort in course order: ``04_...`` before ``04b_...`` before ``05_...``."""


def course_notebooks(root: Path) -> list[Path]:
    """The notebooks of the site, in course order, relative to ``root``: ``notebooks/NN_*.ipynb``,
    with the exercise replaced by its student version ``notebooks/student/<exercise>.ipynb``. In a
    student release the solution source is absent and the student version alone stands for it."""
    names = sorted({p.name for folder in (root / "notebooks", root / "notebooks" / "student")
                    for p in folder.glob("[0-9][0-9]*_*.ipynb") if NUMBERED.match(p.name)})
    found = []
    for name in names:
        path = root / "notebooks" / name
        if Path(name).stem == EXERCISE or not path.exists():
            path = root / "notebooks" / "student" / name
            if not path.exists():
                raise FileNotFoundError(f"{path} is missing: generate the student version of the exercise "
                                        "(`python -m course_utils.authoring.student_version`)")
        found.append(path.relative_to(root))
    return found


def notebook_title(nb: nbformat.NotebookNode) -> str:
    """The first ``# `` heading of the notebook, without its number: "Start here: how this course works"."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return re.sub(r"^\d\d[a-z]?\s*·\s*", "", line[2:].strip())
    raise ValueError("the notebook has no '# Title' heading in a markdown cell")


def _control(model: dict, ident: str = "") -> str | None:
    """HTML of one control, disabled, at its saved value, its label tied to it (``for``/``id``; ``ident``
    makes the id unique on the page); None for models that are not controls."""
    state, kind = model["state"], model["model_name"]
    name = html.escape(str(state.get("description") or ""))
    ident = html.escape(f"widget-{ident or id(model)}")
    label = f'<label for="{ident}">{name}</label>'
    if kind in ("IntSliderModel", "FloatSliderModel"):
        value, low, high, step = (state.get(k) for k in ("value", "min", "max", "step"))
        return (f'{label}<input type="range" id="{ident}" disabled min="{low}" max="{high}" step="{step}" '
                f'value="{value}" aria-label="{name}"><span>{value} (from {low} to {high})</span>')
    if kind == "DropdownModel":
        labels, index = state.get("_options_labels", []), state.get("index")
        options = "".join(f'<option{" selected" if i == index else ""}>{html.escape(str(label))}</option>'
                          for i, label in enumerate(labels))
        return (f'{label}<select id="{ident}" disabled aria-label="{name}">{options}</select>'
                f'<span>one of {html.escape(", ".join(map(str, labels)))}</span>')
    if kind in ("CheckboxModel", "ToggleButtonModel"):
        checked = " checked" if state.get("value") else ""
        return f'{label}<input type="checkbox" id="{ident}" disabled{checked} aria-label="{name}"><span></span>'
    return None


def static_widget(view: dict, models: dict) -> list[nbformat.NotebookNode]:
    """The outputs that stand in for one widget view on the site.

    ``view`` is the output's widget-view data (``{"model_id": ...}``); ``models`` the notebook's saved
    widget state (model id -> ``{"model_name", "state"}``), empty if it saved none. Returns a note
    (HTML) with the controls drawn at their saved values, then the outputs (figures, text) that the
    widget's output area saved. Without saved state: only a note that the slider works when the
    notebook runs.
    """
    found = widget_models(models, view.get("model_id", ""))
    ids = {id(m): i for i, m in models.items()}
    controls = [c for m in found if (c := _control(m, ids.get(id(m), "")))]
    saved = [copy.deepcopy(out) for m in found if m["model_name"] == "OutputModel"
             for out in m["state"].get("outputs", [])]
    parts = [f'<div class="{WIDGET_NOTE_CLASS} admonition note"><p class="admonition-title">Interactive widget</p>']
    if saved:
        parts.append("<p>These controls work when the notebook runs (JupyterLab, Colab): moving one redraws the "
                     "result. This page cannot run the notebook: it shows the values saved with it and, below, "
                     "the result the notebook saved for them.</p>")
        parts += ['<div class="controls">', *controls, "</div>"] if controls else []
    else:
        parts.append("<p>The slider works when the notebook runs (JupyterLab, Colab: see the launch button at "
                     "the top). This page cannot run it, and the notebook saved no result to show here.</p>")
    parts.append("</div>")
    note = nbformat.v4.new_output("display_data", data={
        "text/html": "".join(parts), "text/plain": "(an interactive widget: it works when the notebook runs)"})
    for out in saved:
        out.setdefault("metadata", {})
    return [note, *(nbformat.from_dict(out) for out in saved)]


def site_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` ready for a static page: the Colab badge image becomes a text link, every widget
    view becomes :func:`static_widget`'s outputs, and the saved widget state is dropped (no widget
    JavaScript; notebook 12 saves progress-bar models that no output shows)."""
    nb = copy.deepcopy(nb)
    models = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = BADGE_RE.sub(_badge_as_text, cell.source)
        elif cell.cell_type == "code":
            outputs = []
            for out in cell.get("outputs", []):
                view = out.get("data", {}).get(WIDGET_VIEW)
                outputs += static_widget(view, models) if view is not None else [out]
            cell.outputs = outputs
    nb.metadata.pop("widgets", None)
    return nb


def _badge_as_text(badge: re.Match) -> str:
    """``[![Open In Colab](<image>)](<url>)`` -> ``[Open this notebook in Colab](<url>)``."""
    return f"[Open this notebook in Colab]({badge.group(0).rsplit('](', 1)[1]}"


# ------------------------------------------------------------------------------------- pages

def readme_section(readme: str, heading: str) -> str:
    """The README's ``## `` section whose title starts with ``heading``, heading line included, up to
    the next ``## `` heading; ``heading=""`` gives the introduction (after the ``# `` title, before
    the first ``## ``). Raises ValueError if there is no such section."""
    lines, start = readme.splitlines(), None
    for i, line in enumerate(lines):
        if heading and line.startswith("## ") and line[3:].startswith(heading):
            start = i
        elif not heading and line.startswith("# "):
            start = i + 1
        if start is not None:
            break
    if start is None:
        raise ValueError(f"the README has no section '## {heading}...': the site takes its text from there")
    end = next((j for j in range(start + 1, len(lines)) if lines[j].startswith("## ")), len(lines))
    return "\n".join(lines[start:end]).strip() + "\n"


def readme_summaries(readme: str) -> dict[str, str]:
    """Notebook number ("08") -> its "what it covers" column in the README's notebook table.

    Only that table counts: the one whose header has a "what it covers" column, its rows up to the
    first line that is not a table row. (Other tables start rows with a number too: the time table's
    header row is "| 00 | 01 | 02 | ...", which once made the site say notebook 00 covers "02".)
    Raises ValueError if there is no such table or a number has two rows."""
    lines = readme.splitlines()
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] if line.lstrip().startswith("|") else None
             for line in lines]
    start = next((i for i, cols in enumerate(cells) if cols and "what it covers" in cols), None)
    if start is None:
        raise ValueError("the README has no notebook table (a header with a 'what it covers' column): "
                         "the site's landing page takes each notebook's summary from it")
    column, found = cells[start].index("what it covers"), {}
    for cols in cells[start + 1:]:
        if cols is None:
            break
        if re.fullmatch(r"\d\d[a-z]?", cols[0]) and len(cols) > column:
            if cols[0] in found:
                raise ValueError(f"the README's notebook table has two rows for notebook {cols[0]}")
            found[cols[0]] = cols[column]
    return found


def _site_links(markdown: str, pages: set[str]) -> str:
    """Relative links in README text, made to work on the site: a staged page stays a page link (so
    the build checks it); any other file of the repository becomes its address on GitHub."""
    def fix(m: re.Match) -> str:
        text, target = m.group(1), m.group(2)
        if re.match(r"[a-z]+:|#", target) or target.split("#")[0] in pages:
            return m.group(0)
        return f"[{text}](https://github.com/{GITHUB_REPO}/blob/{BRANCH}/{target})"
    return re.sub(r"(?<!!)\[([^\]]*)\]\(([^)\s]+)\)", fix, markdown)


def _promote_headings(markdown: str) -> str:
    """One level up for every heading outside code blocks (## -> #), so a README section is a page."""
    out, fenced = [], False
    for line in markdown.splitlines():
        fenced ^= line.lstrip().startswith("```")
        out.append(line[1:] if not fenced and re.match(r"#{2,6} ", line) else line)
    return "\n".join(out) + "\n"


def landing_page(readme: str, entries: list[tuple[Path, str]]) -> str:
    """index.md: the README's introduction, the notebook table (a row per notebook, in course order;
    its summary from the README's table), how to run the course, and the site's table of contents."""
    pages = {rel.as_posix() for rel, _ in entries}
    summaries = readme_summaries(readme)
    rows = []
    for rel, title in entries:
        number = rel.name.split("_")[0]
        if number not in summaries:
            raise ValueError(f"the README's notebook table has no row for {rel.as_posix()}: add one "
                             f"('| {number} | [...] | what it covers | badge |'); the site's table uses it")
        rows.append(f"| {number} | [{title}]({rel.as_posix()}) | {summaries[number]} |")
    toc = "\n".join(rel.with_suffix("").as_posix() for rel, _ in entries)
    exercise = next((f"[notebook 11]({rel.as_posix()})" for rel, _ in entries if rel.stem == EXERCISE), None)
    student_note = (f"\nThe graded exercise, {exercise}, is shown as students receive it: the solutions "
                    "removed.\n" if exercise else "")
    return f"""# {PROJECT}

{_site_links(readme_section(readme, ""), pages)}
## The notebooks

| # | notebook | what it covers |
|---|---|---|
{chr(10).join(rows)}
{student_note}
{HOW_TO_RUN}
Teaching with it? See the page [for instructors](instructors.md).

```{{toctree}}
:caption: Notebooks
:hidden:

{toc}
```

```{{toctree}}
:caption: Teaching
:hidden:

instructors
```
"""


def instructors_page(readme: str, entries: list[tuple[Path, str]]) -> str:
    """instructors.md: the README's section for instructors, and how this site is made."""
    pages = {rel.as_posix() for rel, _ in entries}
    section = _promote_headings(_site_links(readme_section(readme, INSTRUCTORS_HEADING), pages))
    exercise = next((rel for rel, _ in entries if rel.stem == EXERCISE), None)
    shown = (f"\nThe exercise as students receive it: [notebook 11]({exercise.as_posix()}) "
             f"([open it in Colab]({colab_url(exercise.as_posix())})).\n" if exercise else "")
    return f"{section}{shown}\n{SITE_SECTION}"


# ------------------------------------------------------------------------------------- stage and build

def mathjax_source() -> Path:
    """The MathJax 3 files shipped by the PyPI package ``sphinx-mathjax-offline`` (only its files are used)."""
    try:
        dist = importlib.metadata.distribution("sphinx-mathjax-offline")
    except importlib.metadata.PackageNotFoundError:
        raise RuntimeError("the site needs MathJax from the package sphinx-mathjax-offline: "
                           "pip install -e '.[site]' (or `make site`)") from None
    path = Path(str(dist.locate_file("sphinx-mathjax-offline/static/mathjax")))
    if not (path / "tex-chtml.js").exists():
        raise RuntimeError(f"{path}/tex-chtml.js not found: reinstall sphinx-mathjax-offline")
    return path


def copy_mathjax(dest: Path) -> None:
    """What ``tex-chtml.js`` loads in a browser (about 3 MB of the package's 24 MB): the combined
    component, the TeX extensions it may autoload, the CHTML web fonts, the menu and a11y parts."""
    source = mathjax_source()
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source / "tex-chtml.js", dest / "tex-chtml.js")
    for sub in ("input/tex/extensions", "output/chtml/fonts/woff-v2", "ui", "a11y"):
        shutil.copytree(source / sub, dest / sub, dirs_exist_ok=True)


def stage(root: Path, src: Path) -> list[Path]:
    """Write the site's Sphinx sources for the repository at ``root`` into ``src`` (emptied first).
    Returns the staged notebooks (relative paths, course order)."""
    if src.exists():
        shutil.rmtree(src)
    (src / "_static").mkdir(parents=True)
    readme = (root / "README.md").read_text(encoding="utf-8")
    entries = []
    for rel in course_notebooks(root):
        nb = nbformat.read(root / rel, as_version=4)
        entries.append((rel, notebook_title(nb)))
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(site_notebook(nb), src / rel)
    (src / "index.md").write_text(landing_page(readme, entries), encoding="utf-8")
    (src / "instructors.md").write_text(instructors_page(readme, entries), encoding="utf-8")
    (src / "_static" / "course.css").write_text(COURSE_CSS, encoding="utf-8")
    copy_mathjax(src / "_static" / "mathjax")
    (src / "conf.py").write_text(CONF_PY.format(project=PROJECT, repo=GITHUB_REPO, branch=BRANCH),
                                 encoding="utf-8")
    return [rel for rel, _ in entries]


def build(src: Path, out: Path, capture: bool = False) -> subprocess.CompletedProcess:
    """``sphinx-build -W --keep-going -n`` from ``src`` into ``out/html`` (doctrees in ``out/doctrees``).
    One process (``-j 1``): on two busy cores, parallel reading was slower. The warnings go to stderr,
    or into the result's ``stderr`` with ``capture=True``; any warning makes ``returncode`` non-zero."""
    html_dir = out / "html"
    if html_dir.exists():
        shutil.rmtree(html_dir)
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-j", "1", "-b", "html",
           "-d", str(out / "doctrees"), str(src), str(html_dir)]
    return subprocess.run(cmd, text=True, capture_output=capture)


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is below it, else absolute."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path.resolve())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: build/site in the repository)")
    args = parser.parse_args(argv)
    root = repo_root()
    if root is None:
        parser.error("run this from a checkout of the course repository (pip install -e .)")
    out = (args.out or root / "build" / "site").resolve()
    start, cpu_start = time.perf_counter(), time.process_time()
    staged = stage(root, out / "src")
    result = build(out / "src", out)
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu_start + resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
    if result.returncode:
        print(f"site build FAILED (sphinx-build exit {result.returncode}): every warning above fails it. "
              f"A location such as notebooks/08_x.ipynb:60008 is cell 6, line 8 of the notebook; the "
              f"staged sources are in {_shown(out / 'src')}.", file=sys.stderr)
        return 1
    html_dir = out / "html"
    files = [p for p in html_dir.rglob("*") if p.is_file()]
    size_mb = sum(p.stat().st_size for p in files) / 1e6
    print(f"site built from {len(staged)} notebooks in {wall:.1f} s (CPU {cpu:.1f} s): "
          f"{_shown(html_dir)}/index.html ({size_mb:.1f} MB, {len(files)} files)\n"
          f"view it:  python -m http.server -d {_shown(html_dir)} 8000   then open http://127.0.0.1:8000/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
