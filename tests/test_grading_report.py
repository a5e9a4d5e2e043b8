"""The class report (course_utils.authoring.grading_report): its content from made-up results, then the
file itself in Debian's Chromium: no console error, every plot loads, every link resolves (and a broken
copy proves that the link check can fail). The report of a real grading run is checked in
tests/test_grading_cluster.py."""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urljoin

import pytest

from browser_support import PageProblems, chromium, local_only, screenshot, serve
from course_utils.authoring import grading_report
from course_utils.authoring.grading import Result, write_report

PARTS = {"add": 2.0, "mul": 3.0}


def _results() -> list[Result]:
    return [
        Result("ada", {"add": 2, "mul": 3}, 5, 5, "graded", seconds=41.2),
        Result("bob", {"add": 2, "mul": 0}, 2, 5, "graded", "mul: expected 6, got 5", seconds=38.0,
               review=["the test cell was edited"]),
        Result("cy<img src=x onerror=alert(1)>", {"add": 0, "mul": 0}, 0, 5, "timeout",
               "the notebook ran past 3600 s & was stopped", seconds=3600.4),
        Result("dee", {"add": 0, "mul": 0}, 0, 5, "error", "the kernel died <oom>", seconds=12.0),
        Result("ed", {"add": 0, "mul": 0}, 0, 5, "missing", "no notebook in the submission folder"),
        Result("fay two", {"add": 1.5, "mul": 3}, 4.5, 5, "graded", seconds=40.0, cached=True),
    ]


def _write(tmp_path: Path, results=None, **kwargs) -> Path:
    results = _results() if results is None else results
    out = tmp_path / "grades.csv"
    for r in results:
        write_report(r, grading_report.reports_folder(out) / f"{r.student}.txt")
    return grading_report.write_class_report(results, out, PARTS, **kwargs)


def test_the_report_lists_what_to_act_on(tmp_path):
    path = _write(tmp_path, where={"ada": "lab3:4242", "bob": "gpu1:17"}, wall_seconds=125)
    assert path == tmp_path / "grades-report.html"
    text = path.read_text()
    section = lambda name: text.split(f'id="{name}"')[1].split("<h2")[0]  # noqa: E731
    assert "Timeouts (1)" in text and "cy&lt;img src=x" in section("timeouts") and "dee" not in section("timeouts")
    assert "Errors (1)" in text and "the kernel died &lt;oom&gt;" in section("errors")
    assert "Flagged for review (1)" in text and "the test cell was edited" in section("review")
    assert "<img src=x" not in text and "<script" not in text  # every student-made string is escaped
    assert "1 timeout, 1 error, 1 missing" in text and "4 graded" not in text and "3 graded" in text
    assert "2 min 05 s" in text  # the whole run
    # where each was graded: a Dask worker, the client, the cache
    assert "lab3:4242" in text and "gpu1:17" in text and grading_report.CACHED in text
    assert text.count("<img ") == 2 + len(PARTS)  # totals, time, one per part
    assert "Fast mode" not in text
    # links are relative, quoted, and only to reports that exist
    hrefs = re.findall(r'href="([^"]+)"', text)
    assert "grades-reports/fay%20two.txt" in hrefs and all(not h.startswith(("/", "http")) for h in hrefs)


def test_the_report_without_workers_says_this_machine_and_flags_fast_mode(tmp_path):
    results = [Result("ada", {"add": 2, "mul": 3}, 5, 5, "graded", seconds=3, mode="fast")]
    text = _write(tmp_path, results).read_text()
    assert grading_report.THIS_MACHINE in text and "Fast mode" in text and "not a grade" in text
    assert "Timeouts (0)" in text and "Errors (0)" in text


def test_a_missing_per_student_report_is_not_linked(tmp_path):
    out = tmp_path / "grades.csv"
    path = grading_report.write_class_report(_results(), out, PARTS)  # no grades-reports/ folder
    assert "<a href" not in path.read_text()


def test_an_empty_class_gives_a_report_too(tmp_path):
    text = grading_report.write_class_report([], tmp_path / "grades.csv", PARTS).read_text()
    assert "No submissions." in text and "<img" not in text


def _tour(url: str) -> tuple[list[str], int, int]:
    """Open the report; returns (problems, images loaded, links that resolved)."""
    with chromium() as browser:
        context = browser.new_context()
        local_only(context)
        page = context.new_page()
        problems = PageProblems(page)
        page.goto(url, wait_until="load")
        images = page.eval_on_selector_all("img", "els => els.map(e => [e.complete && e.naturalWidth > 0, e.alt])")
        for ok, alt in images:
            if not ok:
                problems.items.append(f"plot did not load: {alt[:60]}")
            if not alt:
                problems.items.append("plot without alt text")
        hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))")
        resolved = 0
        for href in hrefs:
            response = context.request.get(urljoin(url, href))
            if response.ok and response.body():
                resolved += 1
            else:
                problems.items.append(f"link does not resolve: {href} (HTTP {response.status})")
        screenshot(page, "grading-report.png", full_page=True)
        context.close()
    return problems.items, sum(ok for ok, _ in images), resolved


@pytest.mark.browser
def test_the_report_opens_in_chromium(tmp_path):
    _write(tmp_path, where={"ada": "lab3:4242"})
    with serve(tmp_path) as base:
        problems, images, links = _tour(base + "grades-report.html")
    assert problems == []
    assert images == 2 + len(PARTS)
    assert links == 6 + 3  # 6 students in the table + 1 timeout, 1 error, 1 flagged


@pytest.mark.browser
def test_the_link_check_can_fail(tmp_path):
    _write(tmp_path)
    with serve(tmp_path, overrides={"grades-reports/dee.txt": None}) as base:
        problems, _, _ = _tour(base + "grades-report.html")
    assert any("link does not resolve: grades-reports/dee.txt" in p for p in problems)
