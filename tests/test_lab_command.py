"""`make lab` starts JupyterLab on notebooks/: check that the server it runs answers, then stop it."""
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_makefile_lab_target_opens_jupyterlab_on_notebooks():
    text = (ROOT / "Makefile").read_text()
    assert re.search(r"^lab: install\n\t\$\(BIN\)/jupyter lab --notebook-dir=notebooks", text, re.MULTILINE)


def test_jupyterlab_answers_on_its_port(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    jupyter = Path(sys.executable).parent / "jupyter"
    cmd = [str(jupyter), "lab", "--notebook-dir=notebooks", f"--port={port}", "--no-browser",
           "--ServerApp.token=coursetest", "--ip=127.0.0.1"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path), JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"))
    server = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while True:
            try:
                url = f"http://127.0.0.1:{port}/api/contents?token=coursetest"
                listing = json.load(urllib.request.urlopen(url, timeout=2))
                break
            except OSError:
                assert server.poll() is None, "jupyter lab exited early"
                assert time.time() < deadline, "jupyter lab did not answer within 60 s"
                time.sleep(0.5)
        names = {item["name"] for item in listing["content"]}
        assert "00_start_here.ipynb" in names  # it serves the notebooks folder
    finally:
        server.terminate()
        server.wait(timeout=30)
