"""Numbers quoted in a notebook's prose must be numbers the notebook itself shows (or cites).

A measured figure written into a markdown cell drifts as soon as the notebook is re-executed. This
check finds every such figure that no code cell and no output of the same notebook contains.

What counts as a measured number in a markdown cell:
- a number with a decimal point (``0.705``, ``84.9``);
- a number followed by a unit or a multiplier (``27×``, ``10x``, ``5 dB``, ``236 img/s``, ``38 %``, ``1.1 MB``);
- an integer of 100 or more written with digits (``1456``, ``1,456``) that is not a year (1900-2099).
Small bare integers ("3 layers", "a 3x3 kernel" aside) are structure, not measurements.

Not checked: inline code and code blocks, ``$math$``, link targets, HTML tags, numbers glued to a
name (``conv1``, ``VGG16``, ``ResNet-152``), and every number of a sentence that cites a source: a
markdown link, "et al.", a year in parentheses, or the words "lecture", "slide" or "paper".

Code comments are prose too: their decimals and numbers with units are checked (shape tuples and
bare integers there are annotations), and nothing in a comment counts as shown. So is a figure's alt
text (``mystnb.image.alt``), checked like markdown: a number read off the plot must also be printed.
A prose number matches when a number printed in an output (text only) or written in the code of a
code cell is the same after rounding to the prose's decimals; a percentage also matches the fraction
(0.849 -> 84.9 %).
"""
from __future__ import annotations

import io
import math
import re
import tokenize
from dataclasses import dataclass

import nbformat

UNITS = ("img/s", "samples/s", "dB", "ms", "min", "MB", "GB", "kB", "%", "×", "x", "s", "M", "G", "k")
"""Units or multipliers that make a number a measured one, longest first."""

_UNIT_RE = "|".join(re.escape(u) for u in UNITS)
_PROSE_NUMBER = re.compile(
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"   # 1,456 | 0.705 | 12 | .5
    rf"(?:\s?(?P<unit>{_UNIT_RE})(?![A-Za-z]))?")
_OUTPUT_NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d*\.?\d+(?:[eE][-+]?\d+)?")
_CITATION = re.compile(r"\]\(|et al\.?|\((?:19|20)\d\d[a-z]?\)|\b(?:lecture|slides?|paper)\b", re.IGNORECASE)
_STRIP = [
    re.compile(r"```.*?```", re.DOTALL),          # fenced code
    re.compile(r"`[^`\n]*`"),                     # inline code
    re.compile(r"\$\$.*?\$\$", re.DOTALL),        # display math
    re.compile(r"\$[^$\n]+\$"),                   # inline math
    re.compile(r"<[^>\n]+>"),                     # HTML tags
    re.compile(r"!\[[^\]]*\]\([^)]*\)"),          # images
]
_TUPLE = re.compile(r"\(\s*\d[\d\s,.*x×]*\)")  # (1, 4, 71, 60), (1, 25, 71*60): shapes in comments
_LINK_TARGET = re.compile(r"\]\([^)]*\)")
_SENTENCE_END = re.compile(r"(?<=[.!?:;])\s+(?=[A-Z(*_\-])|\n\s*\n|\n\s*[-*] |\n\s*\d+\. |\n#+ ")


@dataclass(frozen=True)
class ProseNumber:
    """One measured number found in a markdown cell."""

    text: str        # as written, e.g. "84.9 %"
    value: float     # 84.9
    decimals: int    # 1
    percent: bool    # True for "%"
    sentence: str    # the sentence it stands in (for the report)


def _sentences(markdown: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(markdown) if s and s.strip()]


def prose_numbers(markdown: str, comment: bool = False) -> list[ProseNumber]:
    """The measured numbers of a markdown text (see the module docstring for what counts).

    ``comment=True`` reads code comments, which annotate rather than report: shape tuples such as
    ``(1, 4, 71, 60)`` and bare integers are skipped there; decimals and numbers with units are checked.
    """
    found = []
    for sentence in _sentences(markdown):
        if _CITATION.search(sentence):
            continue
        clean = sentence
        for pattern in _STRIP + ([_TUPLE] if comment else []):
            clean = pattern.sub(" ", clean)
        clean = _LINK_TARGET.sub("]", clean)
        for match in _PROSE_NUMBER.finditer(clean):
            start = match.start()
            before = clean[max(0, start - 2):start]
            if before[-1:] and (before[-1].isalnum() or before[-1] in "_./"):
                continue  # glued to a name or a path: conv1, VGG16, v0.6
            if before[-1:] == "-" and before[:1].isalpha():
                continue  # ResNet-152, mit-b0
            after = clean[match.end():match.end() + 1]
            if after.isalpha() or after == "_":
                continue  # 3rd, 2D, 64px glued words, 1e6-style identifiers
            raw, unit = match.group("num"), match.group("unit")
            if unit in ("x", "×") and re.match(r"\s?\d", clean[match.end():]):
                continue  # a size such as 64x64 or 3 × 3, not a ratio
            value = float(raw.replace(",", ""))
            decimals = len(raw.split(".")[1]) if "." in raw else 0
            if not unit and decimals == 0 and (comment or value < 100 or 1900 <= value <= 2099):
                continue
            text = raw + (("" if unit in ("×", "x") else " ") + unit if unit else "")
            found.append(ProseNumber(text, value, decimals, unit == "%", " ".join(sentence.split())))
    return found


def split_comments(source: str) -> tuple[str, str]:
    """A code cell's source split into (code without comments, the comments' text, one per line).

    Comments are prose: their numbers are checked like markdown's, and they do not count as shown.
    """
    code_lines, comments = [], []
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
        comment_at = {(t.start[0], t.start[1]): t.string for t in tokens if t.type == tokenize.COMMENT}
        for number, line in enumerate(source.splitlines(), start=1):
            cut = next((col for (row, col) in comment_at if row == number), None)
            code_lines.append(line if cut is None else line[:cut])
            if cut is not None:
                comments.append(comment_at[(number, cut)].lstrip("#").strip())
    except (tokenize.TokenError, IndentationError, SyntaxError):  # IPython syntax (!cmd, %magic): by line
        for line in source.splitlines():
            code, _, comment = line.partition("#") if not re.search(r"[\"'].*#", line) else (line, "", "")
            code_lines.append(code)
            if comment:
                comments.append(comment.strip())
    return "\n".join(code_lines), "\n".join(comments)


def shown_numbers(nb: nbformat.NotebookNode) -> list[float]:
    """Every number written in the code of the notebook's code cells (not their comments) or printed
    in their text outputs."""
    texts = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        texts.append(split_comments(cell.source)[0])
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                texts.append(output.get("text", ""))
            elif output.get("output_type") in ("execute_result", "display_data"):
                data = output.get("data", {})
                texts.append(str(data.get("text/plain", "")))
                texts.append(str(data.get("text/markdown", "")))
    values = []
    for text in texts:
        text = text if isinstance(text, str) else "".join(text)
        for match in _OUTPUT_NUMBER.finditer(text):
            try:
                values.append(abs(float(match.group().replace(",", ""))))
            except ValueError:
                pass
    return values


def matches(number: ProseNumber, shown: list[float]) -> bool:
    """True when some shown value rounds to the prose number (a percentage also matches its fraction)."""
    tolerance = 0.5 * 10 ** -number.decimals + 1e-9
    scales = (1.0, 100.0) if number.percent else (1.0,)
    return any(math.isfinite(v) and abs(v * scale - number.value) <= tolerance for v in shown for scale in scales)


def figure_alt(cell: nbformat.NotebookNode) -> str:
    """The text alternative of a code cell's figure (cell metadata ``mystnb.image.alt``), or ""."""
    alt = cell.get("metadata", {}).get("mystnb", {}).get("image", {}).get("alt", "")
    return alt if isinstance(alt, str) else ""


def stale_numbers(nb: nbformat.NotebookNode) -> list[tuple[int, ProseNumber]]:
    """(cell index, number) for every measured number in the prose (markdown cells, code comments and
    figures' alt texts, which say a figure's result in words) that the notebook does not show."""
    shown = shown_numbers(nb)
    stale = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            numbers = prose_numbers(cell.source)
        else:
            numbers = prose_numbers(split_comments(cell.source)[1], comment=True) + prose_numbers(figure_alt(cell))
        stale += [(index, number) for number in numbers if not matches(number, shown)]
    return stale


VERDICTS = ("wider", "narrower", "better", "worse", "faster", "slower", "higher", "lower",
            "beats", "outperforms", "more accurate", "less accurate")
"""Words that report the outcome of a comparison (a measured result without a figure)."""

_OTHER_NOTEBOOK = re.compile(r"\bnotebooks?\s+(\d\d[a-z]?)\b", re.IGNORECASE)
_VERDICT = re.compile(r"\b(?:" + "|".join(re.escape(v) for v in VERDICTS) + r")\b", re.IGNORECASE)


def cross_notebook_claims(nb: nbformat.NotebookNode, own: str | None = None) -> list[tuple[int, str, str]]:
    """(cell index, what, sentence) for every markdown sentence that quotes another notebook's result.

    A sentence that names "notebook NN" (NN other than ``own``, this notebook's number) quotes a
    result when it holds a measured number (see :func:`prose_numbers`) that this notebook does not
    print, or a verdict word (:data:`VERDICTS`: wider, better, ...) with no number this notebook
    prints. Such a result drifts when the other notebook is re-executed: compute it here, or drop it.
    """
    shown = shown_numbers(nb)
    found = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        text = cell.source
        for pattern in _STRIP:
            text = pattern.sub(" ", text)
        for sentence in _sentences(text):
            others = {m.group(1) for m in _OTHER_NOTEBOOK.finditer(sentence)} - {own}
            if not others:
                continue
            numbers = [n for n in prose_numbers(sentence) if not _CITATION.search(sentence)]
            stale = [n.text for n in numbers if not matches(n, shown)]
            verdict = _VERDICT.search(sentence)
            if stale:
                found.append((index, f"the figure {stale[0]!r}", " ".join(sentence.split())))
            elif verdict and not any(matches(n, shown) for n in numbers):
                found.append((index, f"the verdict {verdict.group()!r}", " ".join(sentence.split())))
    return found
