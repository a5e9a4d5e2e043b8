"""What in a submission's code a person should look at: read, never run.

The grader flags a submission (in its notes, marked ``REVIEW``) when a cell the student wrote or
changed touches what the grading relies on, or re-uses the course's own solutions:

- IPython's machinery: ``get_ipython()``, input/AST transformers, ``set_custom_exc``, event callbacks,
  the shell's or kernel's methods, ``IPython.core`` / ``ipykernel``;
- Python's machinery: ``builtins``, ``sys.modules``, ``sys.settrace``, frames (``sys._getframe``,
  ``f_back``...), ``gc``, ``ctypes``, code objects (``__code__``), dynamic code (``exec``, ``eval``,
  ``compile``, ``__import__``, ``importlib``);
- the course package's internals: assigning to or deleting an attribute of a ``course_utils`` module,
  ``setattr`` on one, reading where a module lives (``__file__``, ``__path__``, ``inspect.getsource``);
- other libraries' code: assigning to an attribute of an imported module or of one of its classes
  (``np.allclose = ...``, ``nn.Module.__call__ = ...``);
- processes, signals and the network: ``os.fork``, ``subprocess``, ``signal``, ``socket``, ``urllib``...;
- absolute paths to folders outside its working folder (``"/home/..."``: other students' files, the grader's);
- re-use of the course's own solutions (:data:`REUSED_SOLUTIONS`) in a cell the student wrote, where
  the exercise asks them to write their own (the course's UNet, metrics, VOC dataset and transforms,
  ready-made segmentation networks).

A flag is a question for a person, not a verdict: a submission is graded the same with or without one.
The checks read the notebook's text with :mod:`ast` (IPython's ``%magic`` and ``!shell`` lines are
read as shell/magic use), following import aliases across cells (``from course_utils import metrics``
in one cell, ``metrics.confusion_matrix`` in another).
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass

import nbformat

IPYTHON_NAMES = {
    "get_ipython", "ast_transformers", "input_transformers_cleanup", "input_transformers_post",
    "input_transformer_manager", "set_custom_exc", "custom_exceptions", "CustomTB", "run_cell",
    "run_cell_async", "run_code", "run_ast_nodes", "user_expressions", "showtraceback", "InteractiveShell",
    "ZMQInteractiveShell", "IPythonKernel", "display_pub", "register_magic_function", "transform_cell",
}
IPYTHON_MODULES = ("IPython.core", "IPython.terminal", "ipykernel", "traitlets")
PYTHON_MACHINERY = {
    "builtins": "the builtins module", "__builtins__": "the builtins module",
    "sys.modules": "sys.modules", "sys.meta_path": "the import system", "sys.path_hooks": "the import system",
    "sys.settrace": "a tracer (it can jump over lines)", "sys.setprofile": "a profiler hook",
    "sys._getframe": "stack frames", "sys.displayhook": "sys.displayhook", "sys.excepthook": "sys.excepthook",
    "threading.settrace": "a tracer", "inspect.currentframe": "stack frames", "inspect.stack": "stack frames",
    "gc": "the garbage collector's view of all objects", "ctypes": "ctypes (raw memory)",
    "importlib": "dynamic imports", "types.CodeType": "code objects", "types.FunctionType": "function objects",
}
FRAME_ATTRS = {"f_back", "f_globals", "f_locals", "f_code", "f_trace", "f_lineno", "__code__", "__globals__",
               "__closure__", "tb_frame", "gi_frame", "cr_frame"}
LOCATION_ATTRS = {"__file__", "__path__", "__spec__", "__loader__", "__cached__"}
DYNAMIC_CALLS = {"exec", "eval", "compile", "__import__", "globals", "setattr", "delattr", "getattr"}
PROCESS_NET = {
    "os.fork": "starts processes", "os.forkpty": "starts processes", "os.setsid": "detaches a process",
    "os.system": "runs a shell command", "os.popen": "runs a shell command", "os.kill": "sends signals",
    "os.killpg": "sends signals", "os.execv": "replaces the process", "os.execve": "replaces the process",
    "os.execl": "replaces the process", "os.posix_spawn": "starts processes", "os.spawnl": "starts processes",
    "subprocess": "runs programs", "multiprocessing": "starts processes", "signal": "handles signals",
    "socket": "opens network connections", "urllib": "opens network connections",
    "http.client": "opens network connections", "requests": "opens network connections",
    "shutil.rmtree": "deletes folders", "sqlite3": "opens databases (nbgrader's gradebook is one)",
}
REUSED_SOLUTIONS: dict[str, str] = {
    "course_utils.models": "the course's UNet and its blocks",
    "course_utils.metrics": "the course's metrics",
    "course_utils.voc_dataset.VOCVariation": "the course's VOC dataset",
    "course_utils.voc_dataset.voc_transforms": "the course's VOC transforms",
    "course_utils.voc_dataset.voc_split_ids": "the course's VOC split",
    "course_utils.voc.read_mask": "the course's VOC reader",
    "course_utils.voc.load_voc_sample": "the course's VOC reader",
    "course_utils.voc.trainval_ids": "the course's VOC id list",
    "segmentation_models_pytorch": "a ready-made segmentation network (smp)",
    "torchvision.models.segmentation": "a ready-made segmentation network (torchvision)",
}
"""Qualified names (a module means all of it) whose use in a student's own cell is flagged as re-use.
Upper-case names (constants such as ``NUM_CLASSES``) are never flagged."""


@dataclass(frozen=True)
class Flag:
    """One thing for a person to review: where it is and what it touches."""

    cell: int
    part: str   # the nbgrader grade_id of the cell, or "" for a cell the student added
    what: str   # e.g. "IPython's machinery: ast_transformers"
    line: int = 0

    def __str__(self) -> str:
        where = f"cell {self.cell}" + (f" ({self.part})" if self.part else " (added by the student)")
        return f"{where}, line {self.line}: {self.what}" if self.line else f"{where}: {self.what}"


def python_source(cell_source: str) -> str:
    """The cell as Python: IPython ``%magic``/``!shell`` lines become ``__ipython_magic__(...)`` calls (so
    they can be flagged), a ``%%cell magic`` makes the whole cell a string."""
    lines = cell_source.splitlines()
    if lines and lines[0].lstrip().startswith("%%"):
        return f"__ipython_magic__({cell_source!r})"
    out = []
    for line in lines:
        stripped = line.lstrip()
        if stripped.startswith(("%", "!")) or re.match(r"^[\w.]+\s*=\s*[%!]", stripped):
            indent = line[:len(line) - len(stripped)]
            out.append(f"{indent}__ipython_magic__({stripped!r})")
        else:
            out.append(line)
    return "\n".join(out)


class _Aliases(ast.NodeVisitor):
    """Import aliases of a notebook: name -> qualified name (``np`` -> ``numpy``, ``UNet`` ->
    ``course_utils.models.UNet``)."""

    def __init__(self):
        self.names: dict[str, str] = {}

    def visit_Import(self, node):
        for alias in node.names:
            if alias.asname:
                self.names[alias.asname] = alias.name
            else:
                top = alias.name.split(".")[0]
                self.names[top] = top

    def visit_ImportFrom(self, node):
        if node.level or not node.module:
            return
        for alias in node.names:
            if alias.name != "*":
                self.names[alias.asname or alias.name] = f"{node.module}.{alias.name}"


def _qualified(node: ast.AST, aliases: dict[str, str]) -> str | None:
    """``a.b.c`` with ``a`` replaced by what it was imported as; None if the base is not an import."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name) and node.id in aliases:
        return ".".join([aliases[node.id], *reversed(parts)])
    if isinstance(node, ast.Name) and node.id in ("builtins", "__builtins__", "sys", "os", "gc", "ctypes"):
        return ".".join([node.id, *reversed(parts)])
    return None


def _matches(name: str, table) -> str | None:
    """The key of ``table`` that ``name`` is or lies below (``subprocess.run`` matches ``subprocess``)."""
    for key in table:
        if name == key or name.startswith(key + "."):
            return key
    return None


class _Checker(ast.NodeVisitor):
    def __init__(self, aliases: dict[str, str], reuse: dict[str, str]):
        self.aliases, self.reuse = aliases, reuse
        self.found: list[tuple[int, str]] = []

    def flag(self, node, what):
        self.found.append((getattr(node, "lineno", 0), what))

    def check_name(self, node, name: str, reuse: bool = True):
        top = name.split(".")[-1]
        if _matches(name, IPYTHON_MODULES) or top in IPYTHON_NAMES:
            self.flag(node, f"IPython's machinery: {name}")
        key = _matches(name, PYTHON_MACHINERY)
        if key:
            self.flag(node, f"Python's machinery: {name} ({PYTHON_MACHINERY[key]})")
        key = _matches(name, PROCESS_NET)
        if key:
            self.flag(node, f"processes, signals or network: {name} ({PROCESS_NET[key]})")
        key = _matches(name, self.reuse) if reuse else None
        if key and name != key and not top.isupper() and name != "course_utils.voc_dataset.get_voc":
            self.flag(node, f"re-use of {self.reuse[key]}: {name}")

    def visit_Import(self, node):
        for alias in node.names:  # importing a module is not re-use; using what is in it may be
            self.check_name(node, alias.name, reuse=False)

    def visit_ImportFrom(self, node):
        if node.module:
            for alias in node.names:
                if alias.name == "*":
                    self.flag(node, f"imports everything from {node.module}")
                self.check_name(node, f"{node.module}.{alias.name}")

    def visit_Attribute(self, node):
        name = _qualified(node, self.aliases)
        if name:
            self.check_name(node, name, reuse=isinstance(node.ctx, ast.Load))
        base = node
        while isinstance(base, ast.Attribute):  # each attribute of the chain a.b.c, checked once
            if base.attr in FRAME_ATTRS:
                self.flag(base, f"Python's machinery: .{base.attr} (frames and code objects)")
            if base.attr in LOCATION_ATTRS:
                self.flag(base, f"where code lives: .{base.attr} (e.g. to find the course's files)")
            if base.attr in IPYTHON_NAMES and not name:
                self.flag(base, f"IPython's machinery: .{base.attr}")
            base = base.value
        if name is None or not isinstance(base, ast.Name):
            self.visit(base)  # the chain's start: a call, a subscript, or a plain (non-import) name

    def visit_Name(self, node):
        if node.id in IPYTHON_NAMES or node.id in ("__builtins__",):
            self.flag(node, f"IPython's or Python's machinery: {node.id}")
        elif node.id in LOCATION_ATTRS:
            self.flag(node, f"where code lives: {node.id}")
        elif node.id in self.aliases and isinstance(node.ctx, ast.Load):
            full = self.aliases[node.id]
            key = _matches(full, self.reuse)
            if key and full != key and not node.id.isupper() and full != "course_utils.voc_dataset.get_voc":
                self.flag(node, f"re-use of {self.reuse[key]}: {full}")

    def visit_Constant(self, node):
        # a file right in /tmp is the sandbox's private scratch space; a deeper /tmp path may be the
        # grader's own folders (or a repository) on the host, so it is flagged like any other
        if isinstance(node.value, str) and re.match(r"^(/[\w.-]+){2,}/?$|^~/", node.value) \
                and not re.match(r"^/tmp/[\w.-]+$", node.value) \
                and not node.value.startswith(("/dev/", "/proc/self/")):
            self.flag(node, f"an absolute path outside its working folder: {node.value[:80]!r}")

    def visit_Call(self, node):
        if isinstance(node.func, ast.Name):
            if node.func.id in DYNAMIC_CALLS:
                first = node.args[0] if node.args else None
                target = _qualified(first, self.aliases) if first is not None else None
                if node.func.id not in ("setattr", "delattr", "getattr") or target or not isinstance(first, ast.Name):
                    self.flag(node, f"dynamic code: {node.func.id}()" + (f" on {target}" if target else ""))
            elif node.func.id == "__ipython_magic__":
                text = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else ""
                if text.lstrip().startswith("!") or re.match(r"^%%?(bash|sh|script|system|sx)\b", text.strip()):
                    self.flag(node, f"a shell command: {text.strip()[:60]}")
                return
        name = _qualified(node.func, self.aliases)
        if name in ("inspect.getsource", "inspect.getfile", "inspect.getsourcefile", "inspect.getmodule"):
            self.flag(node, f"where code lives: {name}()")
        self.generic_visit(node)

    def _target(self, target, verb, value=None):
        if isinstance(target, (ast.Tuple, ast.List)):
            for t in target.elts:
                self._target(t, verb, value)
            return
        if not isinstance(target, (ast.Attribute, ast.Subscript)):
            return
        name = _qualified(target.value, self.aliases)
        attr = getattr(target, "attr", "[...]")
        if name and (name == "course_utils" or name.startswith("course_utils.")):
            self.flag(target, f"changes the course package: {verb} {name}.{attr}")
        elif name and isinstance(target, ast.Attribute) and (
                verb == "deletes" or attr.startswith("__") or not isinstance(value, ast.Constant)):
            # np.allclose = ..., nn.Module.__call__ = ...; a setting such as cudnn.benchmark = True is fine
            self.flag(target, f"changes library code: {verb} {name}.{attr}")

    def visit_Assign(self, node):
        for target in node.targets:
            self._target(target, "assigns", node.value)
        self.generic_visit(node)

    def visit_AugAssign(self, node):
        self._target(node.target, "assigns", node.value)
        self.generic_visit(node)

    def visit_AnnAssign(self, node):
        self._target(node.target, "assigns", node.value)
        self.generic_visit(node)

    def visit_Delete(self, node):
        for target in node.targets:
            self._target(target, "deletes")
        self.generic_visit(node)


def review_flags(submission: nbformat.NotebookNode, handed_out: nbformat.NotebookNode | None = None,
                 reuse: dict[str, str] | None = None) -> list[Flag]:
    """What a person should review in ``submission``: the cells the student wrote or changed (those whose
    source is not a cell of ``handed_out``, the student version) are read, and each touch of the
    grading's machinery or re-use of the course's solutions (``reuse``, default :data:`REUSED_SOLUTIONS`)
    is a :class:`Flag`. A cell that is not valid Python is flagged as such."""
    reuse = REUSED_SOLUTIONS if reuse is None else reuse
    given = {c.source.strip() for c in (handed_out.cells if handed_out is not None else []) if c.cell_type == "code"}
    trees: list[tuple[int, str, ast.AST | None]] = []
    collector = _Aliases()
    for index, cell in enumerate(submission.cells):
        if cell.get("cell_type") != "code":
            continue
        try:
            tree = ast.parse(python_source(cell.get("source", "")))
        except SyntaxError:
            tree = None
        if tree is not None:
            collector.visit(tree)
        if cell.get("source", "").strip() in given:
            continue
        meta = cell.get("metadata", {}).get("nbgrader", {})
        test_cell = bool(meta.get("grade")) and not meta.get("solution")  # a test cell: what it imports earns nothing
        trees.append((index, meta.get("grade_id", ""), tree, test_cell))
    flags: list[Flag] = []
    for index, part, tree, test_cell in trees:
        if tree is None:
            flags.append(Flag(index, part, "not valid Python (it cannot run as written)"))
            continue
        # A test cell may use the course's code (the visible Part 6 check does): the grader does not run the
        # student's copy of it (two-phase) or replaces it with the handed-out one (nbgrader), so only
        # touches of the grading's machinery are flagged there, not re-use.
        checker = _Checker(collector.names, {} if test_cell else reuse)
        checker.visit(tree)
        seen = set()
        for line, what in checker.found:
            if what not in seen:
                seen.add(what)
                flags.append(Flag(index, part, what, line))
    return flags
