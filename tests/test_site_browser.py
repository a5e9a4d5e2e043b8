"""The course website in a real browser (headless Chromium): built once per test session, then toured.

The tour visits every page once, as a reader would: the landing page, then the "next" link from page
to page through every notebook (which proves the navigation reaches each one, in order), then the
pages outside that chain, then a search. On each page it records console errors, failed requests,
images that did not load, math that MathJax did not typeset (or typeset without the MathML a screen
reader reads), tables without header cells, widgets shown as text, every image's alt text and axe-core's
WCAG 2.1 A/AA violations. A keyboard tour then reaches every link and control of the landing page and
of a notebook page with Tab alone, with a visible focus, and goes from the landing page to a notebook,
its Colab launch button, and back. The tests below read those records. The last tests serve deliberately broken copies of single pages and check
that the same page check reports them: the checks can fail.

    SITE_DIR=build/site/html pytest tests/test_site_browser.py    # reuse a site built by `make site`

Screenshots of three pages are saved in build/test-artifacts/ (pytest prints the folder).
"""
from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urljoin, urlparse

import nbformat
import pytest

from browser_support import (JS_IMAGE_ALTS, ROOT, PageProblems, axe_violations, chromium, keyboard_problems,
                             local_only, require_site_stack, screenshot, serve)

pytestmark = pytest.mark.browser

from course_utils.authoring.conventions import alt_problem, colab_url, figure_alt  # noqa: E402
from course_utils.authoring.exercise import SOURCE, STUDENT  # noqa: E402
from course_utils.authoring.site import (WIDGET_NOTE_CLASS, WIDGET_VIEW, course_notebooks,  # noqa: E402
                                         notebook_title, site_notebook)

NOTEBOOKS = course_notebooks(ROOT)
NOTEBOOK_PAGES = [rel.with_suffix(".html").as_posix() for rel in NOTEBOOKS]
EXERCISE_PAGE = STUDENT.relative_to(ROOT).with_suffix(".html").as_posix()
OTHER_PAGES = ["instructors.html", "genindex.html"]  # reached without 'next' (instructors also with it)
SEARCH = ("receptive field", "notebooks/08_receptive_field_fcn.html", 3)  # query, page expected, among the first

JS_IMAGES = """async () => {
  const imgs = [...document.images];
  await Promise.all(imgs.map(i => i.decode().catch(() => null)));
  return {n: imgs.length,
          broken: imgs.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.getAttribute('src'))};
}"""
JS_MATH = """async () => {
  const els = [...document.querySelectorAll('span.math, div.math')];
  if (!els.length) return {n: 0, untypeset: []};
  if (!window.MathJax || !MathJax.startup) return {n: els.length, untypeset: [], error: 'MathJax not loaded'};
  await MathJax.startup.promise;
  return {n: els.length,
          untypeset: els.filter(e => !e.querySelector('mjx-container')).map(e => e.textContent.slice(0, 40)),
          errors: [...document.querySelectorAll('mjx-merror')].map(e => e.textContent.slice(0, 60)),
          unspoken: [...document.querySelectorAll('mjx-container')].filter(e => !e.querySelector('mjx-assistive-mml math'))
                      .map(e => e.closest('.math')?.textContent.slice(0, 40) ?? '?')};
}"""
JS_TABLES = """() => [...document.querySelectorAll('article table')].filter(t => !t.querySelector('th'))
                    .map(t => t.innerText.slice(0, 60))"""
JS_LANDING_ROWS = """() => {
  const table = [...document.querySelectorAll('article table')].find(
    t => [...t.querySelectorAll('th')].some(th => th.innerText.trim() === 'what it covers'));
  if (!table) return null;
  return [...table.querySelectorAll('tbody tr')].map(tr => ({
    cells: [...tr.cells].map(td => td.innerText.trim()),
    href: tr.querySelector('a[href]')?.getAttribute('href')}));
}"""
JS_WIDGETS = f"""() => ({{notes: document.querySelectorAll('.{WIDGET_NOTE_CLASS}').length,
                         as_text: document.body.innerText.includes('interactive(children=')}})"""


def widget_views(rel: Path) -> int:
    """How many widget views the notebook's outputs hold (each must become a note on its page)."""
    nb = json.loads((ROOT / rel).read_text(encoding="utf-8"))
    return sum(WIDGET_VIEW in out.get("data", {}) for cell in nb["cells"] for out in cell.get("outputs", []))


def has_math(rel: Path) -> bool:
    """Whether the notebook's markdown has $...$ math outside code (its page must then show typeset math)."""
    nb = json.loads((ROOT / rel).read_text(encoding="utf-8"))
    text = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    text = re.sub(r"```.*?```|`[^`\n]*`", "", text, flags=re.S)
    return re.search(r"\$[^$\s][^$]*\$", text) is not None


README_ROW = re.compile(r"^\| (\d\d[a-z]?) \| \[[^\]]+\]\((notebooks/[^)]+\.ipynb)\) \| (.+?) \| \[!\[Open In Colab\]")


def expected_landing_rows() -> list[dict]:
    """The landing table as a reader must see it: one row per notebook in course order, its number, its
    title (linked to its page) and the README row's "what it covers" text (markdown emphasis and code
    marks removed, as the page renders them). Read from the README here, not by the site's code."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    summaries = {m.group(1): re.sub(r"\*\*|`", "", m.group(3))
                 for line in readme.splitlines() if (m := README_ROW.match(line))}
    return [{"cells": [rel.name.split("_")[0], notebook_title(nbformat.read(ROOT / rel, as_version=4)),
                       summaries.get(rel.name.split("_")[0], "(no README row)")],
             "href": rel.with_suffix(".html").as_posix()} for rel in NOTEBOOKS]


TYPOGRAPHIC_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"'})
"""Sphinx's smart quotes: the README's "smp's" is "smp’s" on the page, the same text."""


def landing_row_problems(rows: list[dict] | None) -> list[str]:
    """How the landing page's notebook table (``JS_LANDING_ROWS``) differs from the README's rows."""
    if rows is None:
        return ["the landing page has no table with a 'what it covers' column"]
    expected = expected_landing_rows()
    rows = [{**row, "cells": [c.translate(TYPOGRAPHIC_QUOTES) for c in row["cells"]]} for row in rows]
    found = [f"row {i + 1}: the page shows {got}, the README says {want}"
             for i, (got, want) in enumerate(zip(rows, expected)) if got != want]
    if len(rows) != len(expected):
        found.append(f"{len(rows)} rows on the page, {len(expected)} notebooks")
    return found


NO_ALT = "(no alt text in the cell's metadata)"


def expected_figure_alts(rel: Path) -> list[str]:
    """The alt text each figure of the notebook's page must have, in page order: its cell's
    ``mystnb.image.alt``, for each figure of the cell (a widget's saved figure included)."""
    nb = site_notebook(nbformat.read(ROOT / rel, as_version=4))
    return [figure_alt(cell) or NO_ALT for cell in nb.cells if cell.cell_type == "code"
            for out in cell.outputs if "image/png" in out.get("data", {})]


def alt_problems(alts: list[dict]) -> list[str]:
    """Images (``JS_IMAGE_ALTS``) whose alt is missing, empty, generic or a file name."""
    return [f"{a['src']}: {problem}" for a in alts if (problem := alt_problem(a["alt"]))]


def check_page(page, problems: PageProblems, path: str, views: int = 0) -> dict:
    """What is wrong on the page now loaded in ``page`` (``problems`` records its events since it was
    cleared). ``views``: widget views in its notebook, each of which must show as a note."""
    found = []
    images = page.evaluate(JS_IMAGES)
    found += [f"image not loaded: {src}" for src in images["broken"]]
    math = page.evaluate(JS_MATH)
    if math.get("error"):
        found.append(f"{math['n']} math elements, but {math['error']}")
    found += [f"math not typeset: {t!r}" for t in math["untypeset"]]
    found += [f"math error: {t!r}" for t in math.get("errors", [])]
    found += [f"math without the MathML a screen reader reads: {t!r}" for t in math.get("unspoken", [])]
    found += [f"a table without header cells: {t!r}" for t in page.evaluate(JS_TABLES)]
    widgets = page.evaluate(JS_WIDGETS)
    if widgets["as_text"]:
        found.append("a widget is shown as the text 'interactive(children=...)'")
    if widgets["notes"] < views:
        found.append(f"{views} widget(s) in the notebook, {widgets['notes']} widget note(s) on the page")
    page.wait_for_load_state("networkidle")  # MathJax fetches its fonts while it typesets
    found += problems.items
    axe = axe_violations(page)
    problems.items = []  # axe fetches the stylesheets again and resolves the theme's @import "../basic.css"
    #                      against the page (/basic.css: 404); the page itself loads it: the line above counts
    return {"path": path, "problems": sorted(set(found)), "images": images["n"], "math": math["n"],
            "alts": page.evaluate(JS_IMAGE_ALTS), "axe": axe,
            "links": {h.split("#")[0] for h in page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
                      if urlparse(h).hostname == "127.0.0.1"}}


def screenshot_at(page, selector: str, name: str) -> Path:
    """A screenshot with the first element matching ``selector`` in view (the top if there is none)."""
    if page.locator(selector).count():
        page.locator(selector).first.scroll_into_view_if_needed()
    return screenshot(page, name)


def _path(url: str) -> str:
    return urlparse(url).path.lstrip("/") or "index.html"


# ------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def site_dir(tmp_path_factory) -> Path:
    """The site, built with the real command (`make site`'s) into a temp folder, or $SITE_DIR if given."""
    require_site_stack()
    if os.environ.get("SITE_DIR"):
        return Path(os.environ["SITE_DIR"])
    out = tmp_path_factory.mktemp("site")
    run = subprocess.run([sys.executable, "-m", "course_utils.authoring.site", "--out", str(out)],
                         cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, f"the site build failed:\n{run.stdout}\n{run.stderr}"
    assert f"python -m http.server -d {out / 'html'}" in run.stdout, run.stdout  # says how to view it
    print(run.stdout)
    return out / "html"


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def tour(site_dir, browser) -> dict:
    """Visit every page of the site once (see the module's docstring); returns what was seen."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    views = {page: widget_views(rel) for page, rel in zip(NOTEBOOK_PAGES, NOTEBOOKS)}
    seen: dict = {"pages": {}, "chain": [], "screenshots": []}
    with serve(site_dir) as base:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        local_only(context)
        page = context.new_page()
        problems = PageProblems(page)

        def visit(path: str) -> None:
            seen["pages"][path] = check_page(page, problems, path, views.get(path, 0))
            seen["pages"][path]["launch"] = page.eval_on_selector_all(".dropdown-launch-buttons a[href]",
                                                                      "els => els.map(e => e.href)")
            if path == "index.html":
                seen["landing_rows"] = page.evaluate(JS_LANDING_ROWS)
                seen["screenshots"].append(screenshot(page, "site-landing.png"))
            elif path == "notebooks/08_receptive_field_fcn.html":
                seen["screenshots"].append(screenshot_at(page, f".{WIDGET_NOTE_CLASS}", "site-08-widget.png"))
            elif path == "notebooks/10_segmentation_metrics.html":
                seen["screenshots"].append(screenshot_at(page, "div.math", "site-10-math.png"))
            elif path == EXERCISE_PAGE:
                seen["exercise_text"] = page.locator("article").inner_text()

        page.goto(urljoin(base, "index.html"), wait_until="load")
        seen["sidebar"] = [_path(h) for h in page.eval_on_selector_all("nav.bd-docs-nav a[href]",
                                                                       "els => els.map(e => e.href)")]
        visit("index.html")
        while page.locator("a.right-next").count() and len(seen["chain"]) < 3 * len(NOTEBOOK_PAGES):
            page.locator("a.right-next").first.click()
            page.wait_for_load_state("load")
            seen["chain"].append(_path(page.url))
            visit(seen["chain"][-1])
        for path in OTHER_PAGES:
            if path not in seen["pages"]:
                page.goto(urljoin(base, path), wait_until="load")
                visit(path)
        query, _, _ = SEARCH  # as a reader does: Ctrl+K, type, Enter (Sphinx's own index, no server)
        page.keyboard.press("Control+k")
        box = page.locator("input[name='q']:visible").first
        box.fill(query)
        box.press("Enter")
        try:
            page.wait_for_selector("#search-results ul.search li a", timeout=30_000)
            page.wait_for_function("() => !/Preparing|Searching/.test(document.querySelector('#search-results h2')"
                                   "?.textContent ?? '')", timeout=30_000)
        except PlaywrightTimeout:
            pass  # no results: test_search_finds_... says so
        seen["search_hits"] = [_path(h) for h in page.eval_on_selector_all(
            "#search-results ul.search li > a", "els => els.map(e => e.href)")]
        visit("search.html")
        links = set().union(*(p["links"] for p in seen["pages"].values()))
        seen["broken_links"] = [f"{_path(u)} (HTTP {status})" for u in sorted(links)
                                if (status := context.request.get(u).status) != 200]
        seen["responses"] = problems.responses
        context.close()
    return seen


# ------------------------------------------------------------------------------------- the real site

def test_every_page_loads_clean(tour):
    assert {p: r["problems"] for p, r in tour["pages"].items() if r["problems"]} == {}
    assert tour["broken_links"] == []
    assert sum(r["images"] for r in tour["pages"].values()) > 50  # the check above looked at real figures


def test_every_row_of_the_landing_table_is_its_readme_row(tour):
    assert landing_row_problems(tour["landing_rows"]) == []
    assert tour["landing_rows"][0]["cells"][2].startswith("environment check")  # once it said "02"


def test_no_request_of_any_page_gets_a_404(tour):
    """Every request a page makes (its HTML, stylesheets and what they @import, scripts, fonts, images,
    the search index) is answered; a 404 of a stylesheet does not break a page visibly, so only this sees it."""
    assert tour["responses"] > 20 * len(tour["pages"])  # the record saw the pages' requests
    assert {p: [m for m in r["problems"] if m.startswith(("HTTP 4", "request failed"))]
            for p, r in tour["pages"].items() if any(m.startswith(("HTTP 4", "request failed")) for m in r["problems"])} == {}


def test_the_navigation_reaches_every_notebook_in_order(tour):
    assert [p for p in tour["sidebar"] if p in NOTEBOOK_PAGES] == NOTEBOOK_PAGES
    assert [p for p in tour["chain"] if p.startswith("notebooks/")] == NOTEBOOK_PAGES
    assert set(tour["pages"]) == {"index.html", "search.html", *OTHER_PAGES, *NOTEBOOK_PAGES}


def test_math_is_typeset(tour):
    math_pages = [page for page, rel in zip(NOTEBOOK_PAGES, NOTEBOOKS) if has_math(rel)]
    assert len(math_pages) >= 3  # 09, 10 and 12 at least: the check is not vacuous
    assert {p: tour["pages"][p]["math"] for p in math_pages if tour["pages"][p]["math"] == 0} == {}
    not_typeset = {p: [m for m in r["problems"] if "math" in m.lower()] for p, r in tour["pages"].items()}
    assert {p: m for p, m in not_typeset.items() if m} == {}


def test_every_notebook_page_has_a_colab_launch_button_for_its_notebook(tour):
    launch = {page: tour["pages"][page]["launch"] for page in NOTEBOOK_PAGES}
    assert launch == {page: [colab_url(rel.as_posix())] for page, rel in zip(NOTEBOOK_PAGES, NOTEBOOKS)}
    assert launch[EXERCISE_PAGE] == [colab_url(STUDENT.relative_to(ROOT).as_posix())]  # the student version


def test_search_finds_the_receptive_field_notebook(tour):
    _, expected, top = SEARCH
    assert expected in tour["search_hits"][:top], tour["search_hits"]


def test_the_exercise_page_is_the_student_version(tour):
    text = tour["exercise_text"]
    assert "YOUR CODE HERE" in text and "raise NotImplementedError" in text
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in text


def test_three_screenshots_for_a_person_to_look_at(tour):
    assert len(tour["screenshots"]) == 3
    assert all(p.stat().st_size > 10_000 for p in tour["screenshots"])


# ------------------------------------------------------------------------------------- accessibility (WCAG 2.1 AA)

def test_every_page_passes_axe_wcag_21_a_and_aa(tour):
    assert {p: r["axe"] for p, r in tour["pages"].items() if r["axe"]} == {}


def test_no_image_has_an_empty_generic_or_file_name_alt(tour):
    assert sum(len(r["alts"]) for r in tour["pages"].values()) > 50  # real figures were looked at
    assert {p: alt_problems(r["alts"]) for p, r in tour["pages"].items() if alt_problems(r["alts"])} == {}


def test_every_figure_shows_the_alt_text_written_in_its_cell(tour):
    """Each figure's alt on its page is its cell's ``mystnb.image.alt`` (figures in page order)."""
    found = {page: [a["alt"] for a in tour["pages"][page]["alts"] if a["figure"]] for page in NOTEBOOK_PAGES}
    expected = {page: expected_figure_alts(rel) for page, rel in zip(NOTEBOOK_PAGES, NOTEBOOKS)}
    assert sum(map(len, expected.values())) > 50
    wrong = {page: [f"figure {i + 1}: page {got!r}, cell {want!r}" for i, (got, want) in enumerate(zip(found[page], want))
                    if got != want] + ([f"{len(found[page])} figures on the page, {len(want)} in the notebook"]
                                       if len(found[page]) != len(want) else [])
             for page, want in expected.items()}
    assert {page: w for page, w in wrong.items() if w} == {}


def test_math_carries_mathml_for_screen_readers(tour):
    pages = [p for p, r in tour["pages"].items() if r["math"]]
    assert len(pages) >= 3
    assert {p: m for p, r in tour["pages"].items() if (m := [x for x in r["problems"] if "MathML" in x])} == {}


DARK_PAGES = ["index.html", "notebooks/02_convolution_and_filters.html", "notebooks/08_receptive_field_fcn.html",
              "notebooks/10_segmentation_metrics.html"]  # the landing table; code; a widget note; math and tables


def test_the_dark_mode_a_reader_can_choose_passes_axe_too(site_dir, browser):
    """The site opens in light mode (the tour above); the colour-mode button offers dark, with its own
    colours: the same axe rules on pages with the landing table, code, a widget note and math."""
    found = {}
    with serve(site_dir) as base:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        local_only(context)
        context.add_init_script("localStorage.setItem('mode', 'dark'); localStorage.setItem('theme', 'dark');")
        page = context.new_page()
        for path in DARK_PAGES:
            page.goto(urljoin(base, path), wait_until="load")
            page.wait_for_load_state("networkidle")
            mode = page.evaluate("() => [document.documentElement.dataset.theme, getComputedStyle(document.body).backgroundColor]")
            assert mode[0] == "dark" and sum(map(int, re.findall(r"\d+", mode[1])[:3])) < 150, mode  # really dark
            found[path] = axe_violations(page)
        context.close()
    assert {p: v for p, v in found.items() if v} == {}


def _tab_to(page, test_js: str, limit: int = 150) -> str | None:
    """Press Tab until the focused element passes ``test_js`` (a JS function of the element); its name."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(f"() => {{ const e = document.activeElement; return !!e && ({test_js})(e); }}"):
            return page.evaluate("() => document.activeElement.getAttribute('href') "
                                 "|| document.activeElement.getAttribute('aria-label')")
    return None


@pytest.fixture(scope="module")
def keyboard(site_dir, browser) -> dict:
    """The keyboard tour: every link and control of the landing page and of notebook 08's page reached with
    Tab, each with a visible focus; then, with the keyboard only, from the landing page to notebook 08,
    its Colab launch button, and back to the landing page."""
    target = "notebooks/08_receptive_field_fcn.html"
    seen: dict = {}
    with serve(site_dir) as base:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        local_only(context)
        page = context.new_page()
        page.goto(urljoin(base, "index.html"), wait_until="load")
        seen["landing"], stops = keyboard_problems(page)
        seen["landing_stops"] = [s["name"] for s in stops]
        page.evaluate("() => document.activeElement?.blur()")
        seen["to_notebook"] = _tab_to(page, f"e => e.closest('article') && e.getAttribute('href') === '{target}'")
        with page.expect_navigation(wait_until="load"):
            page.keyboard.press("Enter")
        seen["arrived"] = _path(page.url)
        seen["notebook"], stops = keyboard_problems(page)
        seen["notebook_stops"] = [s["name"] for s in stops]
        page.evaluate("() => { document.activeElement?.blur(); window.scrollTo(0, 0); }")
        seen["launch_button"] = _tab_to(page, "e => e.getAttribute('aria-label') === 'Launch interactive content'")
        page.keyboard.press("Enter")  # opens the menu; Tab goes into it
        seen["colab"] = _tab_to(page, "e => e.closest('.dropdown-launch-buttons .dropdown-menu')", limit=3)
        seen["launch_screenshot"] = screenshot(page, "site-08-launch-menu-keyboard.png")
        page.keyboard.press("Escape")
        page.evaluate("() => { document.activeElement?.blur(); window.scrollTo(0, 0); }")
        seen["home_link"] = _tab_to(page, "e => /(^|\\/)index\\.html$/.test(e.getAttribute('href') || '')")
        with page.expect_navigation(wait_until="load"):
            page.keyboard.press("Enter")
        seen["back"] = _path(page.url)
        context.close()
    return seen


def test_the_landing_page_and_a_notebook_work_from_the_keyboard(keyboard):
    assert keyboard["landing"] == []
    assert keyboard["notebook"] == []
    # the tour saw the pages' real controls: search, colour mode, every notebook link, the launch button
    assert len(keyboard["landing_stops"]) > 2 * len(NOTEBOOK_PAGES)
    for name in ("button Search", "button Color mode", "a notebooks/08_receptive_field_fcn.html"):
        assert name in keyboard["landing_stops"], keyboard["landing_stops"]
    assert "button Launch interactive content" in keyboard["notebook_stops"]


def test_the_keyboard_goes_to_a_notebook_its_colab_button_and_back(keyboard):
    assert keyboard["to_notebook"] == "notebooks/08_receptive_field_fcn.html"
    assert keyboard["arrived"] == "notebooks/08_receptive_field_fcn.html"
    assert keyboard["launch_button"] == "Launch interactive content"
    assert keyboard["colab"] == colab_url("notebooks/08_receptive_field_fcn.ipynb")
    assert keyboard["home_link"] is not None and keyboard["back"] == "index.html"


def solution_lines(source: Path = SOURCE, published: list[Path] = NOTEBOOKS) -> list[str]:
    """Lines only the solution source has: code between BEGIN/END SOLUTION and BEGIN/END HIDDEN TESTS,
    at least 20 characters, in no published notebook (05 legitimately has some lines of the solution)."""
    public = "\n".join((ROOT / rel).read_text(encoding="utf-8") for rel in published)
    nb = json.loads(source.read_text(encoding="utf-8"))
    found, inside = [], False
    for line in (line.strip() for cell in nb["cells"] for line in "".join(cell["source"]).splitlines()):
        if re.match(r"### (BEGIN|END) (SOLUTION|HIDDEN TESTS)", line):
            inside = line.startswith("### BEGIN")
        elif inside and len(line) >= 20 and not line.startswith("#"):
            if json.dumps(line, ensure_ascii=False)[1:-1] not in public:  # as the notebooks' JSON writes it
                found.append(line)
    return found


def files_with_solution_code(site: Path, secret: list[str]) -> list[str]:
    """Files of the site holding one of the ``secret`` lines, as text a reader sees (HTML tags removed:
    syntax highlighting splits code into <span>s)."""
    hits = []
    for path in sorted(p for p in site.rglob("*") if p.suffix in {".html", ".js", ".ipynb", ".txt", ".json"}):
        if "mathjax" in path.parts:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if path.suffix == ".html":
            text = html.unescape(re.sub(r"<[^>]+>", "", text))
        hits += [f"{path.relative_to(site)}: {line!r}" for line in secret if line in text][:1]
    return hits


def test_no_file_of_the_site_holds_solution_code(site_dir, tmp_path):
    secret = solution_lines()
    assert len(secret) >= 10, f"only {len(secret)} solution lines found: did the exercise's markers change?"
    assert files_with_solution_code(site_dir, secret) == []
    assert not [p for p in site_dir.rglob(f"{SOURCE.stem}.*") if "student" not in p.parts]
    # the check can fail: one solution line, highlighted the way the site shows code
    words = secret[0].split(" ", 1)
    (tmp_path / "leak.html").write_text(f'<span class="n">{html.escape(words[0])}</span> {html.escape(words[-1])}')
    assert files_with_solution_code(tmp_path, secret) == [f"leak.html: {secret[0]!r}"]


# ------------------------------------------------------------------------------------- broken copies
# One page of the real site served changed (or one file missing): the page check must report it.

def _check_broken(browser, site: Path, path: str, overrides: dict, views: int = 0) -> list[str]:
    with serve(site, overrides) as base:
        context = browser.new_context()
        local_only(context)
        page = context.new_page()
        problems = PageProblems(page)
        page.goto(urljoin(base, path), wait_until="load")
        found = check_page(page, problems, path, views)["problems"]
        context.close()
    return found


def _replace_widget_note(page_html: str, new: str) -> str:
    start = page_html.index(f'<div class="{WIDGET_NOTE_CLASS}')
    end = page_html.index("</div></div>", start) + len("</div></div>")
    return page_html[:start] + new + page_html[end:]


def test_the_page_check_fails_on_a_missing_image(browser, site_dir):
    path = "notebooks/08_receptive_field_fcn.html"
    page = (site_dir / path).read_text(encoding="utf-8")
    broken = page.replace("</article>", '<img src="../_images/no-such-figure.png" alt="a figure"></article>', 1)
    found = _check_broken(browser, site_dir, path, {path: broken.encode()})
    assert "image not loaded: ../_images/no-such-figure.png" in found
    assert any(p.startswith("HTTP 404") and "no-such-figure.png" in p for p in found), found


def test_the_page_check_fails_on_a_widget_shown_as_text(browser, site_dir):
    path = "notebooks/08_receptive_field_fcn.html"
    page = (site_dir / path).read_text(encoding="utf-8")
    broken = _replace_widget_note(page, "<pre>interactive(children=(IntSlider(value=3, description='kernel'),))</pre>")
    found = _check_broken(browser, site_dir, path, {path: broken.encode()}, views=1)
    assert "a widget is shown as the text 'interactive(children=...)'" in found
    assert "1 widget(s) in the notebook, 0 widget note(s) on the page" in found


def test_the_page_check_fails_when_mathjax_does_not_load(browser, site_dir):
    """What a MathJax from a CDN looks like offline: no script, the math stays TeX source."""
    found = _check_broken(browser, site_dir, "notebooks/10_segmentation_metrics.html",
                          {"_static/mathjax/tex-chtml.js": None})
    assert any(p.endswith("math elements, but MathJax not loaded") for p in found), found
    assert any(p.startswith("HTTP 404") and "tex-chtml.js" in p for p in found), found


def test_the_page_check_fails_on_a_stylesheet_that_is_not_there(browser, site_dir):
    """The theme's stylesheet @imports Sphinx's basic.css: a 404 of it (a wrong path) must be reported."""
    found = _check_broken(browser, site_dir, "notebooks/student/11_exercise_unet_voc64.html", {"_static/basic.css": None})
    assert any(p.startswith("HTTP 404") and p.endswith("/_static/basic.css") for p in found), found


def test_the_landing_table_check_fails_on_a_wrong_summary(browser, site_dir):
    page_html = (site_dir / "index.html").read_text(encoding="utf-8")
    summary = expected_landing_rows()[0]["cells"][2]
    assert page_html.count(f"<td><p>{summary}</p></td>") == 1, "the landing page's markup changed: update this test"
    broken = page_html.replace(f"<td><p>{summary}</p></td>", "<td><p>02</p></td>")
    with serve(site_dir, {"index.html": broken.encode()}) as base:
        context = browser.new_context()
        page = context.new_page()
        page.goto(urljoin(base, "index.html"), wait_until="load")
        rows = page.evaluate(JS_LANDING_ROWS)
        context.close()
    assert landing_row_problems(rows) == [f"row 1: the page shows {dict(rows[0])}, the README says {expected_landing_rows()[0]}"]
    assert rows[0]["cells"][2] == "02"


# ------------------------------------------------------------------------------------- broken copies: accessibility

def _broken_page(browser, site: Path, path: str, page_html: str, action):
    """Serve the real site with ``path`` replaced by ``page_html``, load it, return ``action(page)``."""
    with serve(site, {path: page_html.encode()}) as base:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        local_only(context)
        page = context.new_page()
        page.goto(urljoin(base, path), wait_until="load")
        page.wait_for_load_state("networkidle")
        try:
            return action(page)
        finally:
            context.close()


def test_axe_fails_on_a_faint_code_token_an_image_without_alt_and_a_nameless_button(browser, site_dir):
    """Planted in a big notebook page: the sampled contrast check still finds one faint token among
    thousands of highlighted ones."""
    path = "notebooks/02_convolution_and_filters.html"
    page_html = (site_dir / path).read_text(encoding="utf-8")
    start = page_html.index('<div class="highlight', page_html.index('<div class="cell_input')) + 10
    start = page_html.index("<pre>", start) + len("<pre>")
    broken = (page_html[:start] + '<span style="color:#c8c8c8">faint = 1</span>\n' + page_html[start:]).replace(
        "</article>", '<img src="../_static/images/logo_colab.png"><button class="plain"></button></article>', 1)
    found = _broken_page(browser, site_dir, path, broken, axe_violations)
    assert {v.split(" ")[0] for v in found} == {"color-contrast", "image-alt", "button-name"}, found
    assert any(v.startswith("color-contrast (serious)") and "contrast" in v for v in found), found


def test_the_alt_check_fails_on_a_file_name_a_generic_or_a_missing_alt(browser, site_dir):
    path = "notebooks/03_from_nn_to_cnn.html"
    page_html = (site_dir / path).read_text(encoding="utf-8")
    alts = re.findall(r'<img alt="([^"]+)" src="(\.\./_images/[^"]+)"', page_html)
    assert len(alts) >= 3, "the page's figure markup changed: update this test"
    broken = page_html
    for (alt, src), new in zip(alts, ["{src}", "Figure", None]):  # a file name, a generic word, none at all
        attr = "" if new is None else f'alt="{new.format(src=src)}" '
        broken = broken.replace(f'<img alt="{alt}" src="{src}"', f'<img {attr}src="{src}"', 1)
    found = alt_problems(_broken_page(browser, site_dir, path, broken, lambda page: page.evaluate(JS_IMAGE_ALTS)))
    assert [f.split(": ", 1)[1].split(" (")[0] for f in found] == ["a file name as alt text", "a generic alt text",
                                                                    "no alt text"], found


def test_the_keyboard_check_fails_on_a_link_out_of_the_tab_order_and_an_invisible_focus(browser, site_dir):
    page_html = (site_dir / "index.html").read_text(encoding="utf-8")
    link = '<a class="reference internal" href="notebooks/08_receptive_field_fcn.html">'
    assert page_html.count(link) >= 1, "the landing page's markup changed: update this test"
    broken = page_html.replace(link, link[:-1] + ' tabindex="-1">').replace(
        "</head>", "<style>*:focus-visible { outline: none !important; box-shadow: none !important; }</style></head>", 1)
    found, _ = _broken_page(browser, site_dir, "index.html", broken, keyboard_problems)
    assert any(f.startswith("not reachable with Tab: a notebooks/08_receptive_field_fcn.html") for f in found), found
    assert any(f.startswith("focus not visible: a notebooks/00_start_here.html") for f in found), found


def test_the_page_check_fails_on_math_without_mathml_and_a_table_without_headers(browser, site_dir):
    path = "notebooks/10_segmentation_metrics.html"
    page_html = (site_dir / path).read_text(encoding="utf-8")
    assert '"enableAssistiveMml": true' in page_html
    found = _check_broken(browser, site_dir, path, {path: page_html.replace(  # as a reader can in MathJax's menu
        '"enableAssistiveMml": true', '"enableAssistiveMml": false, "menuOptions": {"settings": {"assistiveMml": false}}'
    ).encode()})
    assert any(p.startswith("math without the MathML a screen reader reads") for p in found), found
    landing = (site_dir / "index.html").read_text(encoding="utf-8")
    assert "<th " in landing
    found = _check_broken(browser, site_dir, "index.html", {"index.html": re.sub(
        r"<(/?)th\b", r"<\1td", landing).encode()})
    assert any(p.startswith("a table without header cells") for p in found), found
