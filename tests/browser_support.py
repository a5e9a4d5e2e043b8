"""What the real-browser tests share: Debian's Chromium driven by Playwright, a local web server, and a
record of what went wrong on a page. Not a test module (no ``test_`` prefix).

The browser is the system's Chromium (Debian package ``chromium``), never Playwright's own download
(``playwright install`` needs the internet). Every request for a host other than 127.0.0.1 is
aborted, so a page that needs a CDN fails here the same way on a laptop with internet, offline and in CI.

A missing browser FAILS the tests, with what to do: install it, point ``CHROMIUM`` at one, or leave
the browser tests out on purpose with ``make test BROWSER=0`` (pytest ``-m "not browser"``), which CI
never does.
"""
from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", ROOT / "build" / "test-artifacts"))
"""Where the browser tests save screenshots for a person to look at (gitignored; printed by pytest)."""
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
MISSING_BROWSER = (
    "The browser tests need Chromium and found none at {path}. Install Debian's package "
    "(`sudo apt-get install chromium`; .ci/run does it in CI), or set CHROMIUM=/path/to/chromium. "
    "Without root, run everything else on purpose with `make test BROWSER=0`.")


def require_site_stack() -> None:
    """Skip (or, in CI, fail) when this Python cannot install the site's stack (Sphinx 9 needs 3.11+)."""
    if sys.version_info < (3, 11):
        message = "the course website needs Python 3.11+ (Sphinx 9); this is " + sys.version.split()[0]
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


@contextlib.contextmanager
def chromium() -> Iterator:
    """A headless Chromium (the system's), as a Playwright ``Browser``."""
    if not Path(CHROMIUM).exists():
        pytest.fail(MISSING_BROWSER.format(path=CHROMIUM), pytrace=False)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the browser tests drive Chromium with Playwright: pip install -e '.[test]' "
                    "(never `playwright install`: the system's Chromium is used)", pytrace=False)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def local_only(context, host: str = "127.0.0.1") -> None:
    """Abort every request of a Playwright ``BrowserContext`` that is not for ``host`` (nor data:/blob:).
    The page sees a failed request and the console an error, which the checks report."""
    def route(r):
        url = r.request.url
        if url.startswith(("data:", "blob:")) or urlparse(url).hostname == host:
            r.continue_()
        else:
            r.abort("blockedbyclient")
    context.route("**/*", route)


class _Handler(http.server.SimpleHTTPRequestHandler):
    overrides: dict[str, bytes | None] = {}

    def do_GET(self):
        path = unquote(urlparse(self.path).path).lstrip("/")
        if path not in self.overrides:
            return super().do_GET()
        body = self.overrides[path]
        if body is None:
            return self.send_error(404)
        self.send_response(200)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # keep pytest's output clean
        pass


@contextlib.contextmanager
def serve(directory: Path, overrides: dict[str, bytes | None] | None = None) -> Iterator[str]:
    """Serve ``directory`` on 127.0.0.1 (a free port) in a thread; yields the base URL ("http://.../").

    ``overrides`` maps a path ("notebooks/08_x.html") to the bytes served instead of the file, or to
    None for a 404: a deliberately broken copy of a site without copying it.
    """
    handler = type("Handler", (_Handler,), {"overrides": dict(overrides or {})})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class PageProblems:
    """Collects what goes wrong on a Playwright ``Page``: console errors, uncaught exceptions, failed
    requests, HTTP responses >= 400. ``items`` is the list of messages."""

    def __init__(self, page):
        self.items: list[str] = []
        self.responses = 0
        page.on("response", lambda r: setattr(self, "responses", self.responses + 1))
        page.on("console", lambda m: m.type == "error" and self.items.append(
            f"console error: {m.text} ({m.location.get('url')})"))
        page.on("pageerror", lambda e: self.items.append(f"uncaught exception: {e}"))
        page.on("requestfailed", lambda r: self.items.append(f"request failed: {r.url} ({r.failure})"))
        page.on("response", lambda r: r.status >= 400 and self.items.append(f"HTTP {r.status}: {r.url}"))


def screenshot(page, name: str, **kwargs) -> Path:
    """Save a screenshot of ``page`` as ARTIFACTS/name and return its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), **kwargs)
    return path
