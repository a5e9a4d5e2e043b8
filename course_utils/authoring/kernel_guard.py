"""The kernel-side half of the grader's guard: a snapshot of IPython's pristine state, restored before
every graded test cell. Standard library and IPython only.

The grader (:mod:`course_utils.authoring.grader_kernel`) sends this file's source to the kernel before
the notebook's first cell runs, and calls :func:`restore` before (and right after) each graded test
cell. Both calls travel as ``user_expressions`` of an empty, silent ``execute_request``: IPython
evaluates them with a plain ``eval`` after the (empty) cell, so the notebook's input transformers, AST
transformers and ``pre_run_cell`` callbacks never see or rewrite them.

What :func:`restore` puts back, as it was before any student code ran:

- IPython's input transformers (cleanup, line, token and post), AST transformers, custom exception
  handler (``set_custom_exc``), event callbacks, display hooks;
- methods patched on the shell or kernel object, or on IPython / ipykernel classes (for example
  ``InteractiveShell.run_cell_async = skip_tests``);
- ``sys.settrace`` / ``sys.setprofile`` (a tracer can jump over an ``assert``), ``sys.stdout``/``stderr``,
  ``displayhook``, ``excepthook``, ``sys.meta_path``, ``sys.path_hooks``;
- the protected modules (builtins, the course package, and every module the instructor's cells import):
  their ``sys.modules`` entries, their global names, the code and defaults of their functions and the
  attributes of their classes (``train.evaluate = lambda *a: 1.0`` and ``evaluate.__code__ = ...`` are undone);
- the names the instructor's cells import into the notebook (``np``, ``torch``, ``train``...), once
  bound, so a test cell never calls a student's stand-in for numpy (nor one hidden in builtins);
- when any of that had been tampered with, Python threads started by the notebook are stopped (one
  could put a hook back between the restore and the test); if one survives, the restore fails and the
  test scores zero.

It cannot stop everything code in the same process can do: it raises the bar for the known tricks, and
the grader flags any submission whose code touches these hooks for a person to review. The sandbox,
not this module, is the security boundary.
"""
import builtins
import fnmatch
import importlib
import json
import sys
import threading
import types

_S = {}  # the pristine snapshot
_LAZY = {"__slotnames__", "__annotations__"}  # class attributes Python adds on its own (copy, typing)
_SHELL_ATTRS = ("input_transformer_manager", "input_transformers_post", "ast_transformers", "events",
                "custom_exceptions", "displayhook", "display_pub", "display_trap", "compile",
                "InteractiveTB", "SyntaxTB")


def _import(name):
    try:
        return importlib.import_module(name)
    except Exception:  # a module the notebook cannot import is simply not protected
        return None


def snapshot(bindings, protect):
    """Take the pristine snapshot. ``bindings``: ``[name, module, attribute or None]`` for each name the
    instructor's cells import; their modules are imported now. ``protect``: fnmatch patterns of
    further module names to protect (those already imported). Returns a one-line summary."""
    from IPython import get_ipython

    for _name, module, attr in bindings:
        if _import(module) is not None and attr and not hasattr(sys.modules[module], attr):
            _import(f"{module}.{attr}")  # `from course_utils import metrics` imports a submodule
    shell = get_ipython()
    kernel = shell.kernel
    tm = shell.input_transformer_manager
    mods = {}
    for _name, module, attr in bindings:
        mod = sys.modules.get(module)
        if mod is None:
            continue
        mods[module] = mod
        value = getattr(mod, attr, None) if attr else mod
        if isinstance(value, types.ModuleType):
            mods[value.__name__] = value
    mods["builtins"] = builtins
    mods.pop("sys", None)  # sys.last_value & co. change on every error: its hooks are handled one by one below
    for name, mod in list(sys.modules.items()):
        if isinstance(mod, types.ModuleType) and name != "sys" and any(fnmatch.fnmatch(name, p) for p in protect):
            mods[name] = mod
    classes = {c for obj in (shell, kernel, tm, shell.events, shell.displayhook, shell.display_pub)
               for c in type(obj).__mro__ if c.__module__.split(".")[0] in ("IPython", "ipykernel")}
    functions = {}
    for name, mod in mods.items():
        for value in list(vars(mod).values()):
            if isinstance(value, type) and value.__module__ != "builtins":
                classes.add(value)
            elif isinstance(value, types.FunctionType):
                functions[value] = (value.__code__, value.__defaults__, value.__kwdefaults__)
    for cls in list(classes):
        for value in list(vars(cls).values()):
            fn = getattr(value, "__func__", value)
            if isinstance(fn, types.FunctionType):
                functions[fn] = (fn.__code__, fn.__defaults__, fn.__kwdefaults__)
    _S.update(
        shell=shell, kernel=kernel, tm=tm, tm_vars=dict(vars(tm)),
        tm_lists={k: list(getattr(tm, k)) for k in ("cleanup_transforms", "line_transforms", "token_transformers")},
        post=list(shell.input_transformers_post), ast=list(shell.ast_transformers),
        custom=(shell.custom_exceptions, shell.CustomTB),
        events=shell.events, callbacks={k: list(v) for k, v in shell.events.callbacks.items()},
        shell_vars=dict(vars(shell)), kernel_keys=set(vars(kernel)),
        shell_attrs={k: getattr(shell, k) for k in _SHELL_ATTRS if hasattr(shell, k)},
        sys={k: getattr(sys, k) for k in ("stdout", "stderr", "displayhook", "excepthook")},
        meta_path=list(sys.meta_path), path_hooks=list(sys.path_hooks), threads=set(sys._current_frames()),
        modules={n: (m, dict(vars(m))) for n, m in mods.items()},
        classes={c: dict(vars(c)) for c in classes}, functions=functions,
        builtins={k: v for k, v in vars(builtins).items() if callable(v)}, builtin_names=set(vars(builtins)),
        bindings=[list(b) for b in bindings],
    )
    return (f"snapshot: {len(mods)} modules, {len(classes)} classes, {len(functions)} functions, "
            f"{len(bindings)} imported names")


def _set_back(label, undone, obj, pristine):
    """Put ``obj``'s attributes listed in ``pristine`` back; delete added ones that hide an inherited one."""
    current = vars(obj)
    bases = type(obj).__mro__[1:] if not isinstance(obj, type) else obj.__mro__[1:]
    for key in [k for k in list(current) if k not in pristine and k not in _LAZY]:
        value = current[key]
        hides = any(key in vars(base) for base in bases)
        if hides and (callable(value) or hasattr(type(value), "__get__")):
            try:
                delattr(obj, key)
                undone.append(f"{label}.{key} (added)")
            except (AttributeError, TypeError):
                pass
    for key, value in pristine.items():
        if current.get(key, _S) is not value:
            try:
                setattr(obj, key, value)
                undone.append(f"{label}.{key}")
            except (AttributeError, TypeError):
                pass


def restore(token):
    """Undo the notebook's hooks and patches. Returns ``token + "|" + json`` with the list of what was
    undone and the threads stopped, or ``"FAILED|" + json`` when a thread that may re-install a hook
    survived."""
    S, undone = _S, []
    if sys.gettrace() is not None or sys.getprofile() is not None:
        undone.append("sys.settrace/setprofile")
    sys.settrace(None)
    sys.setprofile(None)
    threading.settrace(None)
    threading.setprofile(None)
    shell, kernel, tm = S["shell"], S["kernel"], S["tm"]
    for cls, pristine in S["classes"].items():  # classes first: a patched method could run below
        _set_back(cls.__qualname__, undone, cls, pristine)
    for key in [k for k in list(vars(shell)) if k not in S["shell_vars"]]:
        if callable(getattr(type(shell), key, None)):  # e.g. shell.run_cell = ... on the instance
            delattr(shell, key)
            undone.append(f"shell.{key}")
    for key in [k for k in list(vars(kernel)) if k not in S["kernel_keys"]]:
        if callable(getattr(type(kernel), key, None)):
            delattr(kernel, key)
            undone.append(f"kernel.{key}")
    for key, value in S["shell_attrs"].items():  # traits and plain attributes alike
        if getattr(shell, key, S) is not value:
            setattr(shell, key, value)
            undone.append(f"shell.{key}")
    _set_back("input_transformer_manager", undone, tm, S["tm_vars"])
    for key, value in S["tm_lists"].items():  # the list objects are back; now their contents
        if list(getattr(tm, key)) != value:
            undone.append(f"input_transformer_manager.{key}")
            getattr(tm, key)[:] = value
    for key, value in (("input_transformers_post", S["post"]), ("ast_transformers", S["ast"])):
        if list(getattr(shell, key)) != value:
            undone.append(key)
            getattr(shell, key)[:] = value
    if (shell.custom_exceptions, shell.CustomTB) != S["custom"]:
        undone.append("custom_exceptions (set_custom_exc)")
    shell.custom_exceptions, shell.CustomTB = S["custom"]
    for key, value in S["callbacks"].items():
        if shell.events.callbacks.get(key) != value:
            undone.append(f"events[{key}]")
            shell.events.callbacks.setdefault(key, [])[:] = value
    for key, value in S["sys"].items():
        if getattr(sys, key) is not value:
            setattr(sys, key, value)
            undone.append(f"sys.{key}")
    for key in ("meta_path", "path_hooks"):
        if getattr(sys, key) != S[key]:
            getattr(sys, key)[:] = S[key]
            undone.append(f"sys.{key}")
    for name, (mod, pristine) in S["modules"].items():
        if sys.modules.get(name) is not mod:
            sys.modules[name] = mod
            undone.append(f"sys.modules[{name!r}]")
        namespace = vars(mod)
        own = name == "course_utils" or name.startswith("course_utils.")
        for key, value in pristine.items():
            if namespace.get(key, S) is not value:
                if name == "builtins" and not callable(value):
                    continue  # builtins._ and friends change on their own
                if key.startswith("_") and not own and name != "builtins":
                    continue  # a library's private state (caches, the chosen matplotlib backend...)
                namespace[key] = value
                undone.append(f"{name}.{key}")
    for fn, (code, defaults, kwdefaults) in S["functions"].items():
        if fn.__code__ is not code or fn.__defaults__ is not defaults or fn.__kwdefaults__ is not kwdefaults:
            fn.__code__, fn.__defaults__, fn.__kwdefaults__ = code, defaults, kwdefaults
            undone.append(f"{fn.__module__}.{fn.__qualname__}.__code__")
    user_ns = shell.user_ns
    for name, module, attr in S["bindings"]:
        if name not in user_ns:  # not imported yet; but a stand-in must not hide in builtins either
            if name in vars(builtins) and name not in S["builtin_names"]:
                del vars(builtins)[name]
                undone.append(f"builtins.{name} (added)")
            continue
        mod = S["modules"].get(module, (sys.modules.get(module),))[0]
        if mod is None or (attr is not None and not hasattr(mod, attr)):
            continue  # not imported (the instructor's cell that imports it has not run, or failed)
        value = getattr(mod, attr) if attr is not None else mod
        if user_ns.get(name, S) is not value:
            user_ns[name] = value
            undone.append(f"the notebook's name {name!r} (imported by the instructor's cells)")
    stopped, alive = [], []
    foreign = [i for i in sys._current_frames() if i not in S["threads"]]
    if undone and foreign:
        stopped, alive = _stop_threads(S["threads"])
    result = {"undone": undone, "threads_stopped": stopped, "threads_alive": alive}
    return ("FAILED" if alive else token) + "|" + json.dumps(result)


def _thread_names(ids):
    names = {t.ident: t.name for t in threading.enumerate()}
    return [names.get(i, f"thread {i}") for i in ids]


def _stop_threads(pristine, tries=50):
    """Raise SystemExit in every Python thread started since the snapshot; (stopped, still alive)."""
    import ctypes
    import time
    stopped = _thread_names([i for i in sys._current_frames() if i not in pristine])
    for _ in range(tries):
        ids = [i for i in sys._current_frames() if i not in pristine]
        if not ids:
            return stopped, []
        for i in ids:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(i), ctypes.py_object(SystemExit))
        time.sleep(0.02)
    return stopped, _thread_names([i for i in sys._current_frames() if i not in pristine])
