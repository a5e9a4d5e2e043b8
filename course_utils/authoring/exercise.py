"""The graded exercise: its solution source, its generated student version, its nbgrader name, and the
re-use check its hidden tests call (:func:`reused_course_code`)."""
from __future__ import annotations

import functools
import sys
import types
from pathlib import Path
from typing import Any

from ..core import repo_root


def _root() -> Path:
    root = repo_root()
    if root is None:
        raise RuntimeError("the authoring tools work on a checkout of the course repository (notebooks/ next to "
                           "course_utils/); install it with `pip install -e .` from the clone.")
    return root


ROOT: Path = _root()
"""The repository checkout these tools work on."""
NOTEBOOK = "11_exercise_unet_voc64"
"""File name (without .ipynb) of the exercise, in the source and in every submission."""
SOURCE: Path = ROOT / "notebooks" / f"{NOTEBOOK}.ipynb"
"""The solution source: solutions between ``### BEGIN/END SOLUTION``, hidden tests between
``### BEGIN/END HIDDEN TESTS``, nbgrader cell metadata. Never handed to students."""
STUDENT: Path = ROOT / "notebooks" / "student" / f"{NOTEBOOK}.ipynb"
"""The generated student version (committed, kept in sync by ``student_version``)."""
ASSIGNMENT = "unet_voc64"
"""The nbgrader assignment name used in the grader's course folders."""


# ---------------------------------------------------------------- re-use of the course's own solutions

SOLUTION_MODULES: tuple[str, ...] = (
    "course_utils.models", "course_utils.metrics", "course_utils.voc_dataset", "course_utils.voc",
    "course_utils.train", "segmentation_models_pytorch", "torchvision.models",
)
"""Modules whose functions and classes solve parts of the exercise (the course's UNet, metrics, VOC
dataset and transforms, ready-made segmentation networks). Their constants (``NUM_CLASSES``...) are fine."""


def _banned(module: str | None, banned: tuple[str, ...]) -> bool:
    return bool(module) and any(module == b or module.startswith(b + ".") for b in banned)


def _own_code(fn) -> bool:
    """True for code written in the notebook (or exec'd without a module), not in a library."""
    module = getattr(fn, "__module__", None)
    return module in (None, "__main__") or module not in sys.modules


def reused_course_code(*objects: Any, banned: tuple[str, ...] = SOLUTION_MODULES) -> list[str]:
    """The functions, classes and modules of ``banned`` that ``objects`` are, subclass, contain or call.

    For the exercise's hidden tests: ``reused_course_code(split_ids, VOCDataset) == []`` means the
    student's split and dataset do not call (or inherit from) the course's own VOC code. It follows
    what the notebook's own code can reach: a function's global names and attribute names (so both
    ``metrics.confusion_matrix(...)`` and ``from course_utils.metrics import confusion_matrix`` are
    found), closures and default arguments, the notebook's helper functions it calls, a class's bases
    and methods, and every submodule of an ``nn.Module`` instance. Constants are not reported. It
    cannot see code that was copied into the notebook; that is for a person to judge. Returns sorted
    qualified names (empty: nothing found).
    """
    found: set[str] = set()
    seen: set[int] = set()

    def name_of(obj: Any) -> str:
        if isinstance(obj, types.ModuleType):
            return obj.__name__
        return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__name__)}"

    def visit(obj: Any) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, types.ModuleType):
            if _banned(obj.__name__, banned):
                found.add(obj.__name__)
            return
        if isinstance(obj, (types.MethodType, staticmethod, classmethod)):
            visit(obj.__func__)
            return
        if isinstance(obj, property):
            for part in (obj.fget, obj.fset, obj.fdel):
                if part is not None:
                    visit(part)
            return
        if isinstance(obj, functools.partial):
            visit(obj.func)
            return
        if isinstance(obj, type):
            for base in obj.__mro__:
                if _banned(base.__module__, banned):
                    found.add(name_of(base))
            if _own_code(obj):
                for value in vars(obj).values():
                    if callable(value) or isinstance(value, (staticmethod, classmethod, property)):
                        visit(value)
            return
        if isinstance(obj, types.FunctionType):
            if _banned(obj.__module__, banned):
                found.add(name_of(obj))
            elif _own_code(obj):
                visit_code(obj)
            return
        if callable(obj) and _banned(getattr(obj, "__module__", None), banned):  # e.g. a builtin or C function
            found.add(name_of(obj))
            return
        module_class = getattr(obj, "modules", None)
        if callable(module_class) and hasattr(obj, "named_parameters"):  # an nn.Module instance
            for sub in obj.modules():
                visit(type(sub))
            return
        if not isinstance(obj, (str, bytes, int, float, complex, bool, type(None))):
            visit(type(obj))

    def visit_code(fn: types.FunctionType) -> None:
        codes, names = [fn.__code__], set()
        while codes:
            code = codes.pop()
            names.update(code.co_names)
            codes.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
        values = []
        for name in names:
            if name in fn.__globals__:
                values.append(fn.__globals__[name])
        values += [cell.cell_contents for cell in (fn.__closure__ or ()) if _has_contents(cell)]
        values += list(fn.__defaults__ or ()) + list((fn.__kwdefaults__ or {}).values())
        for value in values:
            visit(value)
            if isinstance(value, types.ModuleType):  # module.attribute chains: metrics.confusion_matrix
                chain, followed = [value], {id(value)}
                while chain:
                    module = chain.pop()
                    for name in names:
                        attr = getattr(module, name, None)
                        if attr is None or id(attr) in seen:
                            continue
                        if isinstance(attr, types.ModuleType):
                            if id(attr) not in followed:  # followed, not reported: `self.train()` must not flag cu.train
                                followed.add(id(attr))
                                chain.append(attr)
                        else:
                            visit(attr)

    for obj in objects:
        visit(obj)
    return sorted(found)


def _has_contents(cell: types.CellType) -> bool:
    try:
        cell.cell_contents
    except ValueError:  # an empty cell (a variable not yet bound)
        return False
    return True
