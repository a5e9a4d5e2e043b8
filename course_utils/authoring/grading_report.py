"""The class report next to the gradebook (issue 22): ``grades.csv`` -> ``grades-report.html``.

One self-contained HTML file (the plots are PNG images inside it, the style is inline, no script, no
request to anything) that an instructor opens offline after a grading run. It shows:

* a summary: how many students, how many graded / timed out / failed / missing, how many to review,
  the mean and median total, the time spent grading;
* plots: the distribution of the totals, of each part's points, and of the time per submission;
* the lists a person must act on: timeouts, errors, submissions flagged for review, each student's name
  a link to the per-student report (``grades-reports/<student>.txt``, written by the grader);
* every student in one table: points per part, total, status, review items, seconds, and where it was
  graded (the Dask worker ``host:pid``, this machine's pool, or the cache of an earlier run).

    from course_utils.authoring.grading_report import write_class_report
    write_class_report(results, Path("grades.csv"), parts)      # -> grades-report.html

The grader's command line writes it after every run (``python -m course_utils.authoring.grading``).
"""
from __future__ import annotations

import base64
import html
import io
import os
import statistics
import tempfile
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

__all__ = ["report_path", "reports_folder", "write_class_report", "render_class_report"]

BAR = "#3b528b"      # viridis' blue: one colour, colour-blind safe, readable on white
STATUSES = ("graded", "timeout", "error", "missing")
THIS_MACHINE = "this machine"
CACHED = "cache (earlier run)"


def report_path(csv_out: Path) -> Path:
    """Where the class report of the gradebook ``csv_out`` goes: ``grades.csv`` -> ``grades-report.html``."""
    csv_out = Path(csv_out)
    return csv_out.with_name(f"{csv_out.stem}-report.html")


def reports_folder(csv_out: Path) -> Path:
    """The grader's folder of per-student reports for ``csv_out`` (``grades.csv`` -> ``grades-reports/``)."""
    csv_out = Path(csv_out)
    return csv_out.with_name(f"{csv_out.stem}-reports")


def _fmt(x: float) -> str:
    return f"{x:g}" if abs(x - round(x)) > 1e-9 else str(int(round(x)))


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def _histogram_png(values: Sequence[float], top: float | None, xlabel: str, title: str,
                   size: tuple[float, float] = (6.0, 2.6)) -> str:
    """A histogram as a base64 PNG. ``top``: the largest possible value (points) or None (seconds)."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=size, dpi=100, layout="constrained")
    ax = fig.subplots()
    values = list(values)
    if top is not None and top <= 30 and all(abs(v * 2 - round(v * 2)) < 1e-9 for v in values):
        # points in halves: one bar per possible score, so a reader can count students per score
        step = 0.5 if any(abs(v - round(v)) > 1e-9 for v in values) else 1.0
        edges = [i * step - step / 2 for i in range(int(round(top / step)) + 2)]
    else:
        upper = top if top is not None else max(values, default=1.0) or 1.0
        edges = [upper * i / 20 for i in range(21)]
    ax.hist(values, bins=edges, color=BAR, edgecolor="white")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("students")
    ax.set_title(title, fontsize=10)
    ax.yaxis.get_major_locator().set_params(integer=True)
    if top is not None:
        ax.set_xlim(edges[0], edges[-1])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _img(png: str, alt: str) -> str:
    return f'<img src="data:image/png;base64,{png}" alt="{html.escape(alt)}">'


def _spread(values: Sequence[float], unit: str = "") -> str:
    if not values:
        return "no values"
    return (f"mean {_fmt(round(statistics.fmean(values), 2))}{unit}, median {_fmt(statistics.median(values))}{unit}, "
            f"lowest {_fmt(min(values))}{unit}, highest {_fmt(max(values))}{unit}")


def _student_link(student: str, reports: Path | None, base: Path) -> str:
    name = html.escape(student)
    if reports is None or not (reports / f"{student}.txt").is_file():
        return name
    href = quote(os.path.relpath(reports / f"{student}.txt", base).replace(os.sep, "/"))
    return f'<a href="{href}">{name}</a>'


def render_class_report(results: Sequence, parts: Mapping[str, float], base: Path, reports: Path | None = None,
                        where: Mapping[str, str] | None = None, title: str = "Grading report",
                        wall_seconds: float | None = None) -> str:
    """The report's HTML. results: the grader's ``Result`` objects; parts: ``{part: points}`` in notebook
    order; base: the folder the HTML will be in (links are relative to it); reports: the per-student
    report folder; where: ``{student: "host:pid"}`` of the Dask workers (None: this machine's pool);
    wall_seconds: how long the whole run took (seconds)."""
    results = sorted(results, key=lambda r: r.student)
    where = dict(where or {})
    totals = [r.total for r in results]
    top = max([r.max for r in results] + [sum(parts.values())])
    timed = [r.seconds for r in results if r.status != "missing"]
    counts = dict.fromkeys(STATUSES, 0)
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    flagged = [r for r in results if r.review]
    fast = any(r.mode == "fast" for r in results)
    link = lambda r: _student_link(r.student, reports, base)  # noqa: E731

    def where_of(r) -> str:
        return CACHED if r.cached else where.get(r.student, THIS_MACHINE)

    out = ['<!DOCTYPE html>', '<html lang="en">', '<head>', '<meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f'<title>{html.escape(title)}</title>', f'<style>{_CSS}</style>', '</head>', '<body>', '<main>',
           f'<h1>{html.escape(title)}</h1>',
           f'<p class="meta">Written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by '
           '<code>course_utils.authoring.grading</code>.</p>']
    if fast:
        out.append('<p class="warn" role="note"><strong>Fast mode:</strong> a smoke test of the grading '
                   '(<code>--fast</code>), not a grade. Grade again without <code>--fast</code> for the gradebook.</p>')
    status_text = ", ".join(f"{n} {s}" for s, n in counts.items())
    out += ['<h2>Summary</h2>', '<dl class="summary">',
            f'<dt>students</dt><dd>{len(results)}</dd>',
            f'<dt>status</dt><dd>{html.escape(status_text)}</dd>',
            f'<dt>to review</dt><dd>{len(flagged)}</dd>',
            f'<dt>total (of {_fmt(top)})</dt><dd>{_spread(totals)}</dd>',
            f'<dt>time per submission</dt><dd>{_spread([round(s) for s in timed], " s")}</dd>',
            f'<dt>graded in this run</dt><dd>{len(results) - sum(r.cached for r in results)} '
            f'(the other {sum(r.cached for r in results)} from the cache of an earlier run)</dd>']
    if wall_seconds is not None:
        out.append(f'<dt>whole run</dt><dd>{_duration(wall_seconds)}</dd>')
    out.append('</dl>')

    out.append('<h2>Distributions</h2>')
    if results:
        out.append('<figure>' + _img(_histogram_png(totals, top, "total points", "Totals"),
                   f"Histogram of the totals of {len(results)} students out of {_fmt(top)} points: {_spread(totals)}.")
                   + '<figcaption>Totals (every student, missing and failed ones at 0).</figcaption></figure>')
        out.append('<div class="parts">')
        for part, points in parts.items():
            got = [r.parts.get(part, 0.0) for r in results]
            out.append('<figure>' + _img(_histogram_png(got, points, "points", f"{part} (of {_fmt(points)})",
                                                        size=(3.6, 2.2)),
                                         f"Histogram of the points for {part}, out of {_fmt(points)}: {_spread(got)}.")
                       + f'<figcaption>{html.escape(part)}: {_spread(got)}</figcaption></figure>')
        out.append('</div>')
        if timed:
            out.append('<figure>' + _img(_histogram_png(timed, None, "seconds", "Time per submission"),
                                         f"Histogram of the grading time per submission of {len(timed)} submissions: "
                                         f"{_spread([round(s) for s in timed], ' s')}.")
                       + '<figcaption>Time per submission (a cached result keeps the time of the run that '
                       'graded it).</figcaption></figure>')
    else:
        out.append('<p>No submissions.</p>')

    def listing(heading: str, anchor: str, chosen: list, text) -> None:
        out.append(f'<h2 id="{anchor}">{heading} ({len(chosen)})</h2>')
        if not chosen:
            out.append('<p>None.</p>')
            return
        out.append('<ul class="todo">')
        for r in chosen:
            out.append(f'<li>{link(r)}: {text(r)}</li>')
        out.append('</ul>')

    listing("Timeouts", "timeouts", [r for r in results if r.status == "timeout"], lambda r: html.escape(r.notes))
    listing("Errors", "errors", [r for r in results if r.status == "error"], lambda r: html.escape(r.notes))
    listing("Flagged for review", "review", flagged,
            lambda r: '<ul>' + "".join(f'<li>{html.escape(item)}</li>' for item in r.review) + '</ul>')

    out += ['<h2 id="students">Every student</h2>', '<div class="scroll"><table>', '<thead><tr>',
            '<th scope="col">student</th>',
            *[f'<th scope="col" class="num">{html.escape(p)} ({_fmt(v)})</th>' for p, v in parts.items()],
            '<th scope="col" class="num">total</th>', '<th scope="col">status</th>',
            '<th scope="col" class="num">review</th>', '<th scope="col" class="num">seconds</th>',
            '<th scope="col">graded by</th>', '</tr></thead>', '<tbody>']
    for r in results:
        out += [f'<tr class="{html.escape(r.status)}">', f'<th scope="row">{link(r)}</th>',
                *[f'<td class="num">{_fmt(r.parts.get(p, 0.0))}</td>' for p in parts],
                f'<td class="num">{_fmt(r.total)} / {_fmt(r.max)}</td>', f'<td>{html.escape(r.status)}</td>',
                f'<td class="num">{len(r.review) or ""}</td>', f'<td class="num">{r.seconds:.0f}</td>',
                f'<td>{html.escape(where_of(r))}</td>', '</tr>']
    out += ['</tbody></table></div>', '</main>', '</body>', '</html>', '']
    return "\n".join(out)


def write_class_report(results: Sequence, csv_out: Path, parts: Mapping[str, float], reports: Path | None = None,
                       where: Mapping[str, str] | None = None, title: str | None = None,
                       wall_seconds: float | None = None) -> Path:
    """Write the class report next to the gradebook ``csv_out`` (atomically) and return its path.
    reports: the per-student report folder (default :func:`reports_folder`); the other arguments as in
    :func:`render_class_report`."""
    path = report_path(csv_out)
    folder = Path(reports) if reports is not None else reports_folder(csv_out)
    text = render_class_report(results, parts, path.parent, folder, where,
                               title or f"Grading report: {Path(csv_out).name}", wall_seconds)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # atomic: a temporary file, renamed
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return path


_CSS = """
body { font: 16px/1.5 system-ui, sans-serif; color: #1a1a1a; background: #fff; margin: 0; }
main { max-width: 70rem; margin: 0 auto; padding: 1rem 1.5rem 3rem; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin-top: 2rem; border-bottom: 1px solid #ccc; }
.meta { color: #555; }
.warn { background: #fff4ce; border-left: 4px solid #8a6d00; padding: .5rem 1rem; }
dl.summary { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
dl.summary dt { font-weight: 600; } dl.summary dd { margin: 0; }
figure { margin: 1rem 0; } img { max-width: 100%; height: auto; }
.parts { display: flex; flex-wrap: wrap; gap: 0 1rem; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: .9rem; }
th, td { padding: .2rem .6rem; border-bottom: 1px solid #ddd; text-align: left; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.timeout th, tr.error th, tr.missing th { border-left: 4px solid #8b0000; }
a { color: #0645ad; } a:focus { outline: 2px solid #1a1a1a; }
"""
