"""Course code pasted into a submission: found by the grader, on its side, from the notebook's text.

Importing the course's implementations fails in the grading sandbox (its copy of the package leaves them
out), but their text can be pasted, renamed and reformatted. This check reads each code cell a student
wrote and compares it with the course's implementations of graded parts (:data:`REFERENCES`), statement
by statement, after a normalisation that a renaming or a reformatting does not change:

- the code is parsed (:mod:`ast`): comments, blank lines, line breaks and quotes are gone;
- every name the code binds or reads (variables, arguments, functions, classes) becomes ``_``, and
  docstrings are dropped; attribute names (``bincount``, ``Conv2d``) and constants stay;
- each statement is one line (a compound statement: its header), and two consecutive lines make a pair.

A course function or class of at least :data:`MIN_STATEMENTS` statements whose pairs are found in one
cell for at least :data:`THRESHOLD` of them is reported, with the lines of the cell that matched. It is a
review item (a person decides); it does not change the points.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import nbformat

from .submission_checks import python_source

PACKAGE = Path(__file__).resolve().parents[1]
REFERENCES: dict[str, tuple[str, ...] | None] = {
    "models.py": None,            # None: every top-level function and class
    "metrics.py": None,
    "voc_dataset.py": ("VOCVariation", "_decode_small", "_preloaded", "voc_split_ids", "voc_transforms", "_apply"),
    "voc.py": ("load_voc_sample", "read_mask"),
    "train.py": ("_confusion_add", "_cm_metrics"),
}
MIN_STATEMENTS = 4
THRESHOLD = 0.6


class _Anonymise(ast.NodeTransformer):
    """Every bound or read name becomes ``_``; docstrings go."""

    def visit_Name(self, node):
        return ast.copy_location(ast.Name(id="_", ctx=node.ctx), node)

    def visit_Constant(self, node):  # messages and docstrings are easy to reword: all text is alike
        return ast.copy_location(ast.Constant(value="" if isinstance(node.value, str) else node.value), node)

    def visit_JoinedStr(self, node):
        return ast.copy_location(ast.Constant(value=""), node)

    def visit_arg(self, node):
        node.arg, node.annotation = "_", None
        return node

    def _body(self, node):
        if node.body and isinstance(node.body[0], ast.Expr) and isinstance(getattr(node.body[0], "value", None), ast.Constant) \
                and isinstance(node.body[0].value.value, str):
            node.body = node.body[1:] or [ast.Pass()]
        return node

    def visit_FunctionDef(self, node):
        node.name, node.returns, node.decorator_list = "_", None, []
        self.generic_visit(node)
        return self._body(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node):
        node.name = "_"
        self.generic_visit(node)
        return self._body(node)

    def visit_AnnAssign(self, node):
        self.generic_visit(node)
        return ast.copy_location(ast.Assign(targets=[node.target], value=node.value or ast.Constant(None)), node)


def _lines(tree: ast.AST) -> list[tuple[int, str]]:
    """``(line number, normalised statement)`` for every statement below ``tree``, in order."""
    found: list[tuple[int, str]] = []

    def walk(body):
        for stmt in body:
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str):
                continue  # a docstring
            clean = _Anonymise().visit(ast.parse(ast.unparse(stmt)))
            text = ast.unparse(clean.body[0]) if clean.body else ""
            head = text.splitlines()[0] if text else ""
            found.append((stmt.lineno, head))
            for field in ("body", "orelse", "finalbody", "handlers"):
                inner = getattr(stmt, field, None)
                if isinstance(inner, list) and inner and isinstance(inner[0], (ast.stmt, ast.ExceptHandler)):
                    if isinstance(inner[0], ast.ExceptHandler):
                        for handler in inner:
                            walk(handler.body)
                    else:
                        walk(inner)

    walk(tree.body if isinstance(tree, ast.Module) else [tree])
    return found


@dataclass
class Reference:
    name: str                     # course_utils.models.UNet
    lines: list[str]              # its normalised statements


def references(package: Path = PACKAGE) -> list[Reference]:
    """The course's implementations of graded parts, normalised."""
    out = []
    for filename, names in REFERENCES.items():
        path = Path(package) / filename
        if not path.exists():
            continue
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and (names is None or node.name in names):
                lines = [text for _, text in _lines(node)]
                if len(lines) >= MIN_STATEMENTS:
                    out.append(Reference(f"course_utils.{filename[:-3]}.{node.name}", lines))
    return out


def _pairs(lines: list[str]) -> list[tuple[str, str]]:
    return list(zip(lines, lines[1:]))


_CACHE: list[Reference] = []


def pasted_course_code(nb: nbformat.NotebookNode, handed_out: nbformat.NotebookNode | None = None,
                       refs: list[Reference] | None = None) -> list[str]:
    """Review items, one per course implementation found pasted in a cell the student wrote, with the
    matching lines of that cell (cells identical to one of ``handed_out``'s are skipped)."""
    if refs is None:
        if not _CACHE:
            _CACHE.extend(references())
        refs = _CACHE
    given = {c.source.strip() for c in (handed_out.cells if handed_out is not None else []) if c.cell_type == "code"}
    items = []
    for index, cell in enumerate(nb.cells):
        if cell.get("cell_type") != "code" or cell.get("source", "").strip() in given:
            continue
        try:
            tree = ast.parse(python_source(cell.get("source", "")))
        except SyntaxError:
            continue
        mine = _lines(tree)
        my_pairs: dict[tuple[str, str], list[int]] = {}
        for (l1, t1), (l2, t2) in zip(mine, mine[1:]):
            my_pairs.setdefault((t1, t2), []).extend([l1, l2])
        source_lines = cell.get("source", "").splitlines()
        part = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", "")
        for ref in refs:
            pairs = _pairs(ref.lines)
            hits = [p for p in pairs if p in my_pairs]
            if not pairs or len(hits) / len(pairs) < THRESHOLD:
                continue
            matched = sorted({n for p in hits for n in my_pairs[p]})
            shown = "; ".join(f"{n}: {source_lines[n - 1].strip()[:80]}" for n in matched[:40] if n <= len(source_lines))
            items.append(f"cell {index}{' (' + part + ')' if part else ''}: {len(hits)} of {len(pairs)} statement pairs "
                         f"match {ref.name} (renamed or reformatted, course code pasted?); matching lines {shown}")
    return items
