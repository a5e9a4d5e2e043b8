"""`make lab` starts JupyterLab on notebooks/: run the real Makefile target, check the server answers, stop it."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_make_lab_serves_the_notebooks_folder(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    venv = Path(sys.executable).parent.parent  # the environment running the tests (make test's .venv)
    # -o install: use that environment as it is (no reinstall); LAB_ARGS: headless, a known token, loopback only
    cmd = ["make", "-o", "install", "lab", f"VENV={venv}", f"PORT={port}",
           "LAB_ARGS=--no-browser --ServerApp.token=coursetest --ip=127.0.0.1"]
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path), JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"))
    server = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              start_new_session=True)
    try:
        deadline = time.time() + 90
        while True:
            try:
                url = f"http://127.0.0.1:{port}/api/contents?token=coursetest"
                listing = json.load(urllib.request.urlopen(url, timeout=2))
                break
            except OSError:
                assert server.poll() is None, "make lab exited early: " + server.stderr.read().decode()[-2000:]
                assert time.time() < deadline, "jupyter lab did not answer within 90 s"
                time.sleep(0.5)
        names = {item["name"] for item in listing["content"]}
        assert {"00_start_here.ipynb", "student"} <= names  # it serves notebooks/, not the repository root
        denied = urllib.request.Request(f"http://127.0.0.1:{port}/api/contents")
        try:
            urllib.request.urlopen(denied, timeout=5)
            raise AssertionError("the server answered without its token")
        except urllib.error.HTTPError as err:
            assert err.code == 403
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
