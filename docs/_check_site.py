r"""Open every page of the built documentation in headless Chromium, as a reader.

On every page it checks what a reader would see:

* the math is typeset: every Sphinx math element holds MathJax's output, and
  no raw ``\(``, ``\[`` or ``\begin{`` is left in the text outside code;
* every image loaded (``naturalWidth > 0``);
* the console shows no error, no request fails or gets an HTTP error, and no
  request leaves the site (the site must work without network access);
* no table is wider than the column it sits in (nothing cut off or scrolled).

Usage::

    python docs/_check_site.py [SITE] [--screenshots DIR]

``SITE`` defaults to ``docs/_build/html`` (``nox -s docs`` builds it; ``nox -s
docs_browser`` builds it and runs this). It needs Python ``playwright`` and a
Chromium: ``$CHROMIUM`` or ``chromium`` on the ``PATH`` (Debian's package);
Playwright's own browser downloads are never used. Where no Chromium is
installed it says so and exits 0, having checked nothing. Exits 1 when a page
has a fault, naming the page and the fault, or when the check fails to see one
of the faults of a page made to have them all (so it is known to be able to
fail).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SITE = Path(__file__).resolve().parent / "_build" / "html"
NO_BROWSER = (
    "no Chromium found (set CHROMIUM to its path, or install Debian's chromium "
    "package): the docs were not checked in a browser"
)
# Flags that keep a headless Chromium quiet and off the network here: no
# sandbox (CI runs as root), no GPU, no first-run, update or sync traffic.
FLAGS = (
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
VIEWPORT = {"width": 1280, "height": 800}  # a laptop screen
LOCAL_SCHEMES = ("data:", "blob:", "about:")
SHOWN_FAULTS = 12  # per page; the first ones tell what is wrong
# What a reader would see wrong, each with the words that report it.
FAULTS = {
    "image": "image not loaded",
    "math": "math not typeset",
    "tex": "raw TeX in the text",
    "table": "table wider than its column",
    "request": "request outside the site",
    "console": "console error",
    "script": "script error",
    "http": "HTTP error",
}
# A page with every fault, which the check must report before its verdict on
# the real site counts: a check that cannot fail proves nothing.
BROKEN_PAGE = r"""<!doctype html>
<html><head><title>every fault</title>
<script src="https://example.invalid/mathjax.js"></script>
<script>console.error("an error"); not_a_function();</script>
</head><body>
<p>Math: <span class="math">\(x^2\)</span></p>
<img src="missing.png" alt="missing">
<div style="width: 200px"><table><tr>
<td style="white-space: nowrap">a table cell far wider than its column</td>
</tr></table></div>
</body></html>
"""

# Runs in the page once it has loaded: waits for MathJax to typeset and the
# images to decode, then reports what a reader would see wrong.
INSPECT = r"""
async (names) => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    // MathJax may fail or never finish: the checks below then report the math.
    const timeout = new Promise((resolve) => setTimeout(resolve, 20000));
    await Promise.race([MathJax.startup.promise.catch(() => null), timeout]);
  }
  await document.fonts.ready;
  const images = [...document.images];
  await Promise.all(images.map((img) => {
    img.loading = "eager";
    return img.decode().catch(() => null);
  }));
  const shown = (text) => text.replace(/\s+/g, " ").trim().slice(0, 70);
  const faults = [];
  for (const img of images) {
    if (!(img.complete && img.naturalWidth > 0)) {
      faults.push(`${names.image}: ${img.getAttribute("src")}`);
    }
  }
  for (const el of document.querySelectorAll(".math")) {
    if (!el.querySelector("mjx-container")) {
      faults.push(`${names.math}: ${shown(el.textContent)}`);
    }
  }
  const prose = document.body.cloneNode(true);
  prose.querySelectorAll("pre, code, script, style, textarea, mjx-container")
    .forEach((el) => el.remove());
  const text = prose.textContent;
  for (const match of text.matchAll(/\\[(\[]|\\begin\{/g)) {
    const context = text.slice(match.index, match.index + 60);
    faults.push(`${names.tex}: ${shown(context)}`);
  }
  for (const table of document.querySelectorAll("table")) {
    const room = table.parentElement.clientWidth;
    const width = table.getBoundingClientRect().width;
    if (width > room + 1) {
      const title = table.querySelector("caption .caption-text") || table.caption;
      const caption = title ? title.textContent : table.className;
      faults.push(`${names.table} (${Math.round(width)} px in ${room} px): ` +
        shown(caption));
    }
  }
  return faults;
}
"""


def find_browser() -> str | None:
    """The Chromium executable to use, or None where there is none."""
    return os.environ.get("CHROMIUM") or shutil.which("chromium")


def pages(site: Path) -> list[Path]:
    """The HTML pages of the site (not the theme's and Sphinx's own assets)."""
    return sorted(
        page.relative_to(site)
        for page in site.rglob("*.html")
        if not any(part.startswith("_") for part in page.relative_to(site).parts)
    )


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Nothing: the checks report what matters."""


@contextmanager
def serving(site: Path) -> Iterator[str]:
    """Serve `site` on a free port of the loopback address; yields the URL."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/"
        finally:
            server.shutdown()
            thread.join()


def check(site: Path, browser_path: str, screenshots: Path | None) -> dict[str, list]:
    """The faults of every page of `site`, by page (an empty list: none)."""
    from playwright.sync_api import sync_playwright

    results: dict[str, list] = {}
    with serving(site) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=browser_path,
            headless=True,
            chromium_sandbox=False,
            args=list(FLAGS),
        )
        for page_path in pages(site):
            faults: list[str] = []
            # A fresh profile for each page: a reader may arrive at any page first.
            context = browser.new_context(viewport=VIEWPORT)
            page = context.new_page()

            def keep_in_site(route, request, faults=faults) -> None:
                url = request.url
                if url.startswith(base) or url.startswith(LOCAL_SCHEMES):
                    route.continue_()
                else:
                    faults.append(f"{FAULTS['request']}: {url}")
                    route.abort()

            page.route("**/*", keep_in_site)
            page.on(
                "console",
                lambda message, faults=faults: (
                    message.type == "error"
                    and faults.append(f"{FAULTS['console']}: {message.text}")
                ),
            )
            page.on(
                "pageerror",
                lambda error, faults=faults: faults.append(
                    f"{FAULTS['script']}: {error}"
                ),
            )
            page.on(
                "response",
                lambda response, faults=faults: (
                    response.status >= 400
                    and faults.append(
                        f"{FAULTS['http']} {response.status}: {response.url}"
                    )
                ),
            )
            page.goto(base + page_path.as_posix(), wait_until="load")
            faults.extend(page.evaluate(INSPECT, FAULTS))
            page.wait_for_load_state("networkidle")
            if screenshots is not None:
                shot = screenshots / page_path.with_suffix(".png").as_posix().replace(
                    "/", "_"
                )
                page.screenshot(path=shot, full_page=True)
            context.close()
            results[page_path.as_posix()] = list(dict.fromkeys(faults))
        browser.close()
    return results


def blind_spots(browser_path: str) -> list[str]:
    """The faults of :data:`BROKEN_PAGE` that :func:`check` does not report."""
    with tempfile.TemporaryDirectory() as site:
        Path(site, "index.html").write_text(BROKEN_PAGE)
        (faults,) = check(Path(site), browser_path, None).values()
    return [name for name in FAULTS.values() if not any(name in f for f in faults)]


def main(argv: list[str] | None = None) -> int:
    """Check the site; print each page's faults; 1 if any, else 0."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("site", nargs="?", type=Path, default=SITE)
    parser.add_argument(
        "--screenshots", type=Path, metavar="DIR", help="save a PNG of each page"
    )
    args = parser.parse_args(argv)
    if not (args.site / "index.html").is_file():
        parser.error(f"no built site at {str(args.site)!r} (run: nox -s docs)")
    browser_path = find_browser()
    if browser_path is None:
        print(f"SKIPPED: {NO_BROWSER}")
        return 0
    if args.screenshots is not None:
        args.screenshots.mkdir(parents=True, exist_ok=True)
    missed = blind_spots(browser_path)
    if missed:
        print(f"FAIL the check did not see, on a page that has them: {missed}")
        return 1
    results = check(args.site, browser_path, args.screenshots)
    for page, faults in results.items():
        print(f"{'ok  ' if not faults else 'FAIL'} {page}")
        for fault in faults[:SHOWN_FAULTS]:
            print(f"       {fault}")
        if len(faults) > SHOWN_FAULTS:
            print(f"       ... and {len(faults) - SHOWN_FAULTS} more")
    failed = sum(1 for faults in results.values() if faults)
    print(
        f"{len(results)} pages opened in {browser_path} (and a page with every "
        f"fault, all {len(FAULTS)} kinds reported): {failed} with faults"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
