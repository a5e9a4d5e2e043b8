"""Print, one per line, the flags that give ``uv pip install`` the package sources pip uses here.

uv reads no pip configuration. On the CI machine pip is configured (``/etc/pip.conf``, ``PIP_*``
variables) with local copies of torch and torchvision, extra indexes and a constraints file; without
them uv would download another torch build of several GB. This reads ``pip config list`` and turns
``index-url``, ``extra-index-url``, ``find-links`` and ``constraint`` into uv's flags, taking each key
from the scope pip itself would use (environment, then site, user, global), and adds pip's rule for
several indexes (the best version from any of them) and, when pip names a CA bundle, uv's use of the
system's certificate store. Standard library only: it runs before the virtual environment exists.
Usage (``.ci/run``)::

    make install INSTALLER=uv UV_ARGS="$(python3 .ci/uv_args.py | tr '\n' ' ')"
"""
from __future__ import annotations

import ast
import subprocess
import sys

PRECEDENCE = (":env:", "site", "user", "global")  # the first scope that sets a key wins, as in pip
FLAGS = {"index-url": "--index-url", "extra-index-url": "--extra-index-url", "find-links": "--find-links",
         "constraint": "--constraint"}


def pip_config(python: str = sys.executable) -> dict[str, str]:
    """``{key: value}`` of this machine's ``pip config list`` (see :func:`parse_pip_config`)."""
    out = subprocess.run([python, "-m", "pip", "config", "list"], capture_output=True, text=True, check=True).stdout
    return parse_pip_config(out)


def parse_pip_config(out: str) -> dict[str, str]:
    """``{key: value}`` from the text of ``pip config list`` (lines ``scope.key='value'``), each key from
    its highest-precedence scope."""
    found: dict[str, dict[str, str]] = {}
    for line in out.splitlines():
        name, sep, value = line.partition("=")
        scope, _, key = name.rpartition(".")
        if sep and key:
            found.setdefault(key, {})[scope] = ast.literal_eval(value)
    return {key: next(by_scope[s] for s in (*PRECEDENCE, *by_scope) if s in by_scope)
            for key, by_scope in found.items()}


def uv_args(config: dict[str, str]) -> list[str]:
    """uv flags for ``config`` (see the module docstring); list values are split on whitespace."""
    args = ["--index-strategy", "unsafe-best-match"]
    for key, flag in FLAGS.items():
        for value in config.get(key, "").split():
            args += [flag, value]
    if config.get("cert"):
        args += ["--native-tls"]  # the system's store; pip's bundle here is that store's file
    return args


if __name__ == "__main__":
    print("\n".join(uv_args(pip_config())))
