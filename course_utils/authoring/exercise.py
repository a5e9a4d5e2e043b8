"""The graded exercise: its solution source, its generated student version, its nbgrader name, and the
re-use check its hidden tests call (:func:`reused_course_code`)."""
from __future__ import annotations

import dis
import functools
import sys
import types
from pathlib import Path
from typing import Any

from ..core import repo_root


ROOT: Path = repo_root() or Path(__file__).resolve().parents[2]
"""The repository checkout these tools work on. Outside a checkout (the course package on its own, as
in the grader's sandbox, where hidden tests may import this module) it is the folder above the
package, and :data:`SOURCE` and :data:`STUDENT` do not exist there."""
NOTEBOOK = "11_exercise_unet_voc64"
"""File name (without .ipynb) of the exercise, in the source and in every submission."""
SOURCE: Path = ROOT / "notebooks" / f"{NOTEBOOK}.ipynb"
"""The solution source: solutions and hidden tests between nbgrader's markers, nbgrader cell
metadata. Never handed to students (the student release leaves it out)."""
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
ALLOWED: frozenset[str] = frozenset({"course_utils.voc_dataset.get_voc", "course_utils.voc.voc_folder"})
"""Helpers of those modules that find the data rather than solve a part: never reported."""


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
    what the notebook's own code can reach, read from its bytecode: the global names a function loads,
    the attribute chains on modules among them (``metrics.confusion_matrix(...)``, ``cu.models.UNet``;
    an attribute of an argument, ``model.train()``, is not a global), imports inside the function,
    closures and default arguments, the notebook's helper functions it calls, a class's bases and
    methods, and every submodule of an ``nn.Module`` instance. Constants and :data:`ALLOWED` helpers are
    not reported. It cannot see code that was copied into the notebook; that is for a person to judge.
    Returns sorted qualified names (empty: nothing found).
    """
    found: set[str] = set()
    seen: set[int] = set()

    def report(obj: Any) -> None:
        name = name_of(obj)
        if name not in ALLOWED:
            found.add(name)

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
                    report(base)
            if _own_code(obj):
                for value in vars(obj).values():
                    if callable(value) or isinstance(value, (staticmethod, classmethod, property)):
                        visit(value)
            return
        if isinstance(obj, types.FunctionType):
            if _banned(obj.__module__, banned):
                report(obj)
            elif _own_code(obj):
                visit_code(obj)
            return
        if callable(obj) and _banned(getattr(obj, "__module__", None), banned):  # e.g. a builtin or C function
            report(obj)
            return
        module_class = getattr(obj, "modules", None)
        if callable(module_class) and hasattr(obj, "named_parameters"):  # an nn.Module instance
            for sub in obj.modules():
                visit(type(sub))
            return
        if not isinstance(obj, (str, bytes, int, float, complex, bool, type(None))):
            visit(type(obj))

    def visit_code(fn: types.FunctionType) -> None:
        global_names, attributes, imported = set(), set(), set()
        codes = [fn.__code__]
        while codes:
            code = codes.pop()
            codes.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
            for ins in dis.get_instructions(code):
                if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
                    global_names.add(ins.argval)
                elif ins.opname in ("LOAD_ATTR", "LOAD_METHOD", "IMPORT_FROM"):
                    attributes.add(ins.argval)
                elif ins.opname == "IMPORT_NAME":  # an import inside the function
                    imported.add(ins.argval)
        values = [fn.__globals__[name] for name in global_names if name in fn.__globals__]
        values += [cell.cell_contents for cell in (fn.__closure__ or ()) if _has_contents(cell)]
        values += list(fn.__defaults__ or ()) + list((fn.__kwdefaults__ or {}).values())
        for value in values:
            visit(value)
            if isinstance(value, types.ModuleType):
                follow(value, attributes)
        for name in imported:  # what `from x import y` / `import x.y` inside the function reach
            if name in sys.modules:
                follow(sys.modules[name], attributes)

    def follow(module: types.ModuleType, attributes: set[str]) -> None:
        """Visit what ``module.<attribute>`` chains reach (metrics.confusion_matrix, cu.models.UNet); the
        modules on the way are followed, not reported."""
        chain, followed = [module], {id(module)}
        while chain:
            current = chain.pop()
            for name in attributes:
                attr = getattr(current, name, None)
                if attr is None or id(attr) in seen:
                    continue
                if isinstance(attr, types.ModuleType):
                    if id(attr) not in followed:
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
