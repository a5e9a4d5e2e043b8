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


# ------------------------------------------------------------------------------------- accessibility (WCAG 2.1 AA)

WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
"""The axe-core rule sets a page must pass: WCAG 2.0 and 2.1, levels A and AA."""

JS_CONTRAST_SAMPLE = """() => {
  // One element per kind of text: same colour, size, weight, shadow, opacity and background (the
  // backgrounds up to the first opaque one). Elements of one kind have the same contrast, so axe's
  // colour-contrast rule checks one of each instead of every token of every code cell (6000 on a page).
  const opaque = c => c !== 'transparent' && !/rgba\\(.*,\\s*0\\)$/.test(c);
  const kind = el => {
    const cs = getComputedStyle(el);
    const parts = [cs.color, cs.fontSize, cs.fontWeight, cs.textShadow, cs.opacity, cs.visibility];
    for (let a = el; a; a = a.parentElement) {
      const s = getComputedStyle(a);
      parts.push(s.backgroundColor, s.backgroundImage, s.opacity, s.mixBlendMode);
      if (opaque(s.backgroundColor) || s.backgroundImage !== 'none') break;
    }
    return parts.join('|');
  };
  document.querySelectorAll('[data-contrast-sample]').forEach(e => e.removeAttribute('data-contrast-sample'));
  const chosen = new Map();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  let texts = 0;
  for (let t = walker.nextNode(); t; t = walker.nextNode()) {
    if (!t.textContent.trim() || !t.parentElement) continue;
    texts++;
    const k = kind(t.parentElement);
    if (!chosen.has(k)) chosen.set(k, t.parentElement);
  }
  chosen.forEach(e => e.setAttribute('data-contrast-sample', ''));
  return {texts: texts, kinds: chosen.size};
}"""


def axe_violations(page) -> list[str]:
    """axe-core's violations of the WCAG 2.1 A and AA rules (``WCAG_TAGS``) on the page now loaded in
    ``page``, one line each: "rule (impact) at <element>: what to fix". Empty: the page passes.

    Every rule runs on the whole page, except colour contrast, which runs on one element of each kind
    of text (``JS_CONTRAST_SAMPLE``): all 6000 syntax-highlighted tokens of a notebook page took axe
    45 s; one of each kind, under 5. Uses the axe-core bundled with ``axe-playwright-python``."""
    try:
        from axe_playwright_python.base import AXE_SCRIPT
    except ImportError:
        pytest.fail("the accessibility tests run axe-core from the package axe-playwright-python: "
                    "pip install -e '.[test]'", pytrace=False)
    if not page.evaluate("() => !!window.axe"):
        page.evaluate(AXE_SCRIPT)
    page.evaluate(JS_CONTRAST_SAMPLE)
    results = page.evaluate("""async (tags) => {
      const only = {resultTypes: ['violations']};
      const all = await axe.run(document, {...only, runOnly: {type: 'tag', values: tags},
                                           rules: {'color-contrast': {enabled: false}}});
      const contrast = await axe.run({include: [['[data-contrast-sample]']]},
                                     {...only, runOnly: {type: 'rule', values: ['color-contrast']}});
      return [...all.violations, ...contrast.violations];
    }""", WCAG_TAGS)
    return [f"{v['id']} ({v['impact']}) at {' '.join(map(str, node['target']))}: "
            f"{node['failureSummary'].splitlines()[-1].strip()[:200]}"
            for v in results for node in v["nodes"]]


JS_IMAGE_ALTS = "() => [...document.images].map(i => ({src: i.getAttribute('src'), alt: i.getAttribute('alt'), " \
                "figure: !!i.closest('article .cell_output')}))"
"""Every image of the page: its src, its alt attribute (null if none), and whether it is a notebook's figure."""


def tab_stops(page, limit: int = 200, check_focus: bool = True) -> list[dict]:
    """Press Tab from the top of the page now loaded until the focus comes back to the first element it
    reached (or ``limit`` presses). For each element reached: ``name`` (tag, then href, label or text),
    and with ``check_focus`` ``visible``: whether the page looks different around it focused and
    unfocused (two screenshots of the element's box and 6 px around it, CSS transitions finished), the
    honest test of a visible focus indicator (WCAG 2.4.7), whatever the theme draws it with."""
    page.evaluate("() => { document.activeElement?.blur(); window.scrollTo(0, 0); }")
    page.mouse.move(0, 0)
    stops: list[dict] = []
    first = None
    for _ in range(limit):
        page.keyboard.press("Tab")
        info = page.evaluate(JS_FOCUSED)
        if info is None:
            continue
        if info["key"] == first:
            break
        first = first or info["key"]
        if check_focus and info["box"]:
            x, y, w, h = info["box"]
            clip = {"x": max(0, x - 6), "y": max(0, y - 6), "width": w + 12, "height": h + 12}
            focused = page.screenshot(clip=clip, animations="disabled")
            page.evaluate("() => document.activeElement.blur()")
            unfocused = page.screenshot(clip=clip, animations="disabled")
            page.keyboard.press("Shift+Tab")  # blur() keeps Chromium's place in the tab order:
            page.keyboard.press("Tab")        # back to the same element, focused from the keyboard again
            info["visible"] = focused != unfocused
        stops.append(info)
    return stops


JS_FOCUSED = """() => {
  const e = document.activeElement;
  if (!e || e === document.body) return null;
  const r = e.getBoundingClientRect();
  const name = e.getAttribute('href') || e.getAttribute('aria-label') || e.getAttribute('title')
               || (e.innerText || '').trim().split('\\n')[0].slice(0, 40);
  const path = []; for (let a = e; a && a !== document.body; a = a.parentElement) path.push(a.tagName + ([...(a.parentElement?.children || [])].indexOf(a)));
  return {name: e.tagName.toLowerCase() + ' ' + name, key: path.join('<'),
          box: r.width && r.height && r.bottom > 0 && r.top < innerHeight ? [r.x, r.y, r.width, r.height] : null};
}"""

JS_FOCUSABLE = """() => {
  // What a keyboard user must be able to reach: every visible link, button and control that is not
  // disabled (a tabindex of -1 on one takes it from the keyboard: that is reported), and any other element
  // the page put in the tab order (tabindex >= 0).
  const native = 'a[href], button, input, select, textarea, summary';
  const sel = native + ', [tabindex]';
  const path = e => { const p = []; for (let a = e; a && a !== document.body; a = a.parentElement) p.push(a.tagName + ([...(a.parentElement?.children || [])].indexOf(a))); return p.join('<'); };
  return [...document.querySelectorAll(sel)].filter(e => !e.disabled && (e.matches(native) || e.tabIndex >= 0)
      && e.checkVisibility({visibilityProperty: true, opacityProperty: true})
      && (e.getClientRects().length > 0))
    .map(e => ({key: path(e), name: e.tagName.toLowerCase() + ' ' + (e.getAttribute('href') || e.getAttribute('aria-label')
               || (e.innerText || '').trim().split('\\n')[0].slice(0, 40))}));
}"""


def keyboard_problems(page, check_focus: bool = True) -> tuple[list[str], list[dict]]:
    """What a keyboard-only reader cannot do on the page now loaded: an element (``JS_FOCUSABLE``) that
    Tab never reaches, and (``check_focus``) an element reached whose focus is not visible. Returns the
    problems and the tab stops (``tab_stops``)."""
    reachable = page.evaluate(JS_FOCUSABLE)
    stops = tab_stops(page, limit=len(reachable) + 20, check_focus=check_focus)
    reached = {s["key"] for s in stops}
    found = [f"not reachable with Tab: {e['name']}" for e in reachable if e["key"] not in reached]
    found += [f"focus not visible: {s['name']}" for s in stops if s.get("visible") is False]
    return found, stops
