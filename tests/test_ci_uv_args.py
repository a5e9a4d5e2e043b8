""".ci/uv_args.py: pip's package sources, handed to uv for CI's install."""
import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("uv_args", ROOT / ".ci" / "uv_args.py")
uv_args = importlib.util.module_from_spec(spec)
spec.loader.exec_module(uv_args)

LISTED = """:env:.default-timeout='180'
:env:.find-links='/opt/wheels'
global.cert='/etc/ssl/certs/ca-certificates.crt'
global.constraint='/etc/xdg/pip/constraints.txt'
global.extra-index-url='file:///opt/pypi/simple file:///opt/pypi-more/simple'
global.find-links='/somewhere/else'
user.index-url='https://mirror.example/simple'
"""


def test_each_source_becomes_a_uv_flag_from_the_scope_pip_would_use():
    config = uv_args.parse_pip_config(LISTED)
    assert config["find-links"] == "/opt/wheels"          # the environment beats the global file
    assert uv_args.uv_args(config) == [
        "--index-strategy", "unsafe-best-match",
        "--index-url", "https://mirror.example/simple",
        "--extra-index-url", "file:///opt/pypi/simple", "--extra-index-url", "file:///opt/pypi-more/simple",
        "--find-links", "/opt/wheels",
        "--constraint", "/etc/xdg/pip/constraints.txt",
        "--native-tls"]


def test_no_configuration_gives_pips_index_rule_only_and_odd_lines_are_ignored():
    assert uv_args.uv_args(uv_args.parse_pip_config("")) == ["--index-strategy", "unsafe-best-match"]
    assert uv_args.parse_pip_config("no equals sign here\n=\n") == {}


def test_the_script_prints_one_flag_per_line_for_this_machine():
    out = subprocess.run([sys.executable, str(ROOT / ".ci" / "uv_args.py")], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out[:2] == ["--index-strategy", "unsafe-best-match"]
    assert out == uv_args.uv_args(uv_args.pip_config())
