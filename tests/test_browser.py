"""The built HTML book (`make book`) in a real browser: what a reader sees.

Headless Chromium (Debian's /usr/bin/chromium, driven by Playwright; no browser is downloaded) opens
every page of _toc.yml at 1280 x 900, served over http from _build/html, and checks: no broken image,
no table wider than the text column, no page wider than the window, math typeset by MathJax, the
Colab and Binder launch buttons on every chapter, and no nbval marker, traceback or smoke-profile
result in the visible text. The top of every page is saved to _build/screenshots/<page>.png.

One module-scoped fixture visits each page once and collects the facts; each kind of failure is its
own test, and every offending page and element is named in one message. The self-tests at the end
run the same checks on small synthetic pages, so that each check is known to be able to fail.
"""
from __future__ import annotations

import functools
import http.server
import os
import re
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest

from book_pages import toc_files

HTML = Path("_build/html")
SCREENSHOTS = Path("_build/screenshots")
CHROMIUM = Path("/usr/bin/chromium")
VIEWPORT = {"width": 1280, "height": 900}
MATH_PAGE = "notebooks/01_se_block"       # must show typeset equations
MATH_TIMEOUT_MS = 20_000                  # MathJax 3 typesets after load: wait this long for mjx-container
IMAGE_TIMEOUT_MS = 10_000
SLACK_PX = 1                              # rounding allowance for widths


def _unavailable(reason):
    if os.environ.get("CI"):
        raise RuntimeError(f"{reason}: CI needs it for the browser tests (`make test` installs it)")
    pytest.skip(reason, allow_module_level=True)


if not CHROMIUM.is_file():
    _unavailable(f"Chromium is not installed at {CHROMIUM} (`make browser`, or `apt-get install chromium`)")
try:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright
except ImportError:
    _unavailable("Playwright is not installed (`pip install -e '.[test]'`)")
if not HTML.is_dir() and os.environ.get("CI"):
    raise RuntimeError("_build/html is missing: CI runs `make book` before the tests")

# Visible text that must never reach a reader: nbval's markers, Python tracebacks, and numbers of the
# smoke profile (senet_core.book.chapters.SMOKE_WARNING "smoke profile: ...", chapters._scale "reduced scale,
# smoke profile", results.provenance_label "measured at reduced scale: smoke profile, ...").
FORBIDDEN = {
    "nbval marker": re.compile(r"NBVAL"),
    "traceback": re.compile(r"Traceback"),
    "smoke profile": re.compile(r"\bsmoke profile\b|profile\s*[=:]\s*[\"'`]?smoke\b|\bsmoke, ", re.I),
}




# ---------------------------------------------------------------------------------------------------
# Serving and visiting a page

class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextmanager
def serve(root: Path):
    """``root`` served over http on a free local port, in a thread; yields the base url."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# Everything measured in the page, once its images have loaded and its math is typeset.
_FACTS_JS = r"""
async ({imageTimeout, slack}) => {
  const short = (s, n = 100) => {
    s = (s || '').replace(/\s+/g, ' ').trim();
    return s.length > n ? s.slice(0, n - 1) + '…' : s;
  };
  const describe = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
    + [...el.classList].slice(0, 3).map(c => '.' + c).join('');
  const contentWidth = el => {
    const cs = getComputedStyle(el);
    return el.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
  };

  const imgs = [...document.images];
  for (const img of imgs) if (img.loading === 'lazy') img.loading = 'eager';
  await Promise.race([
    Promise.all(imgs.map(img => img.complete ? null : new Promise(done => {
      img.addEventListener('load', done); img.addEventListener('error', done);
    }))),
    new Promise(done => setTimeout(done, imageTimeout)),
  ]);
  const images = imgs.map(img => ({src: img.getAttribute('src') || '', alt: short(img.alt, 60),
                                   complete: img.complete, naturalWidth: img.naturalWidth}));

  const tables = [...document.querySelectorAll('table')].map((t, i) => {
    const column = t.closest('.cell_output, article.bd-article, article, main, [role=main]') || document.body;
    let scroller = null;
    for (let el = t.parentElement; el; el = el.parentElement) {
      const ox = getComputedStyle(el).overflowX;
      if ((ox === 'auto' || ox === 'scroll') && el.scrollWidth > el.clientWidth + slack) { scroller = el; break; }
      if (el === column) break;
    }
    const row = (t.tHead && t.tHead.rows[0]) || t.rows[0];
    const header = row ? [...row.cells].map(c => c.innerText.replace(/\s+/g, ' ').trim()).filter(Boolean).join(' | ') : '';
    return {
      index: i + 1,
      header: short(header),
      caption: t.caption ? short(t.caption.innerText, 80) : '',
      width: t.getBoundingClientRect().width,
      column: contentWidth(column),
      columnElement: describe(column),
      scroller: scroller && {element: describe(scroller), scrollWidth: scroller.scrollWidth,
                             clientWidth: scroller.clientWidth},
    };
  });

  // Where a page wider than the window comes from: elements sticking out whose parent does not, and
  // that no scrolling or clipping box holds.
  const overflowing = [];
  const right = el => el.getBoundingClientRect().right;
  const contained = el => {
    for (let a = el.parentElement; a && a !== document.body; a = a.parentElement)
      if (getComputedStyle(a).overflowX !== 'visible') return true;
    return false;
  };
  if (document.documentElement.scrollWidth > window.innerWidth + slack) {
    for (const el of document.body.querySelectorAll('*')) {
      if (right(el) > window.innerWidth + slack && !(el.parentElement && right(el.parentElement) > window.innerWidth + slack)
          && !contained(el)) {
        overflowing.push(`${describe(el)} (right edge at ${Math.round(right(el))} px)`);
        if (overflowing.length === 5) break;
      }
    }
  }

  const links = host => [...document.querySelectorAll('a[href]')].filter(a => a.href.includes(host)).length;
  return {
    images, tables, overflowing,
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
    math: document.querySelectorAll('mjx-container').length,
    mathSources: document.querySelectorAll('.math').length,
    mathErrors: document.querySelectorAll('mjx-merror').length,
    colab: links('colab.research.google.com'),
    binder: links('mybinder.org'),
    text: document.body.innerText,
    // Code blocks of the prose (not cell inputs or outputs): commands a page documents, not results.
    docCode: [...document.querySelectorAll('div.highlight')].filter(b => !b.closest('.cell_input, .cell_output'))
      .map(b => b.innerText).join('\n'),
  };
}
"""


def check_page(tab, url: str, name: str, screenshot: Path | None = None, math_required: bool = False,
               math_timeout_ms: int = MATH_TIMEOUT_MS) -> dict:
    """Open ``url`` in the Playwright page ``tab``, wait for its images and math (``math_timeout_ms``
    for the first equation when the page has some or ``math_required``), save a viewport screenshot to
    ``screenshot``, and return what the checks need, under the page name ``name``."""
    facts = {"page": name, "url": url, "math_required": math_required, "math_timeout_ms": math_timeout_ms,
             "chapter": name.startswith("notebooks/")}
    try:
        response = tab.goto(url, wait_until="load", timeout=60_000)
    except PlaywrightError as e:
        return facts | {"error": f"could not be opened: {str(e).splitlines()[0]}"}
    if response is None or not response.ok:
        return facts | {"error": f"answered HTTP {response.status if response else '?'}"}
    if math_required or tab.locator(".math").count():
        try:
            tab.wait_for_selector("mjx-container", state="attached", timeout=math_timeout_ms)
            # Typesetting is one pass over the page: let MathJax finish it.
            tab.evaluate("""() => Promise.race([window.MathJax?.startup?.promise ?? null,
                                                 new Promise(done => setTimeout(done, 10000))])""")
        except PlaywrightTimeout:
            pass                                          # reported as untypeset math
    facts |= tab.evaluate(_FACTS_JS, {"imageTimeout": IMAGE_TIMEOUT_MS, "slack": SLACK_PX})
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        tab.evaluate("() => window.scrollTo(0, 0)")
        tab.screenshot(path=str(screenshot), full_page=False)
        facts["screenshot"] = str(screenshot)
    return facts


# ---------------------------------------------------------------------------------------------------
# The checks: each returns one line per offending page or element (an empty list when all is well)

def page_errors(facts: list[dict]) -> list[str]:
    return [f"{f['page']}: {f['error']}" for f in facts if "error" in f]


def _opened(facts):
    return [f for f in facts if "error" not in f]


def broken_images(facts: list[dict]) -> list[str]:
    out = []
    for f in _opened(facts):
        for img in f["images"]:
            if img["complete"] and img["naturalWidth"] == 0:
                out.append(f"{f['page']}: <img src={img['src']!r} alt={img['alt']!r}> is broken (naturalWidth 0)")
            elif not img["complete"]:
                out.append(f"{f['page']}: <img src={img['src']!r} alt={img['alt']!r}> did not load in "
                           f"{IMAGE_TIMEOUT_MS // 1000} s")
    return out


def wide_tables(facts: list[dict]) -> list[str]:
    out = []
    for f in _opened(facts):
        for t in f["tables"]:
            too_wide = t["width"] > t["column"] + SLACK_PX
            if not (too_wide or t["scroller"]):
                continue
            what = f"[{t['header']}]" + (f" (caption: {t['caption']})" if t["caption"] else "")
            line = (f"{f['page']}: table {t['index']} {what} is {t['width']:.0f} px wide, its column "
                    f"({t['columnElement']}) {t['column']:.0f} px")
            if t["scroller"]:
                s = t["scroller"]
                line += f"; {s['element']} scrolls sideways ({s['scrollWidth']} px of content in {s['clientWidth']} px)"
            out.append(line)
    return out


def wide_pages(facts: list[dict]) -> list[str]:
    return [f"{f['page']}: the page is {f['scrollWidth']} px wide in a {f['innerWidth']} px window"
            + (f"; sticking out: {', '.join(f['overflowing'])}" if f["overflowing"] else "")
            for f in _opened(facts) if f["scrollWidth"] > f["innerWidth"] + SLACK_PX]


def untypeset_math(facts: list[dict]) -> list[str]:
    out = []
    for f in _opened(facts):
        if f["math"] == 0 and (f["math_required"] or f["mathSources"]):
            out.append(f"{f['page']}: no typeset math (no mjx-container after {f['math_timeout_ms'] / 1000:g} s; "
                       f"{f['mathSources']} .math elements in the page)")
        if f["mathErrors"]:
            out.append(f"{f['page']}: {f['mathErrors']} equations failed to typeset (mjx-merror)")
    return out


def missing_launch_buttons(facts: list[dict]) -> list[str]:
    out = []
    for f in _opened(facts):
        if f["chapter"]:
            missing = [name for name, key in (("Colab", "colab"), ("Binder", "binder")) if not f[key]]
            if missing:
                out.append(f"{f['page']}: no {' and no '.join(missing)} launch button "
                           f"(no link to {', '.join('colab.research.google.com' if m == 'Colab' else 'mybinder.org' for m in missing)})")
    return out


def forbidden_text(facts: list[dict]) -> list[str]:
    out = []
    for f in _opened(facts):
        documented = {line.strip() for line in f.get("docCode", "").splitlines()}
        for line in f["text"].splitlines():
            for kind, pattern in FORBIDDEN.items():
                if kind == "smoke profile" and line.strip() in documented:
                    continue            # a command the page documents (book/reproduce), not a result
                if pattern.search(line):
                    out.append(f"{f['page']}: {kind}: {line.strip()[:160]!r}")
    return out


def _fail_if(lines: list[str], title: str):
    if lines:
        pytest.fail(f"{title} ({len(lines)}):\n  " + "\n  ".join(lines), pytrace=False)


# ---------------------------------------------------------------------------------------------------
# The book

@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def book(browser):
    """Every page of the book, visited once: the facts the tests below check."""
    if not HTML.is_dir():
        pytest.skip("the book is not built (run `make book`)")
    facts = []
    with serve(HTML) as base:
        context = browser.new_context(viewport=VIEWPORT)
        tab = context.new_page()
        for page in toc_files():
            if not (HTML / f"{page}.html").is_file():
                facts.append({"page": page, "error": f"{HTML / page}.html was not built"})
                continue
            facts.append(check_page(tab, f"{base}/{page}.html", page,
                                    screenshot=SCREENSHOTS / f"{page.replace('/', '__')}.png",
                                    math_required=page == MATH_PAGE))
        context.close()
    opened = _opened(facts)
    print(f"\nBrowser check of {HTML} in Chromium at {VIEWPORT['width']} x {VIEWPORT['height']}:")
    for f in opened:
        print(f"  {f['page']:<34} {len(f['images']):>3} images {len(f['tables']):>3} tables {f['math']:>4} math "
              f"(page {f['scrollWidth']} px)")
    print(f"  {len(opened)} of {len(facts)} pages checked: {sum(len(f['images']) for f in opened)} images, "
          f"{sum(len(f['tables']) for f in opened)} tables, {sum(f['math'] for f in opened)} math elements; "
          f"screenshots in {SCREENSHOTS}/")
    return facts


def test_every_page_opens(book):
    _fail_if(page_errors(book), "Pages that did not open")


def test_no_broken_images(book):
    _fail_if(broken_images(book), "Broken images")


def test_no_table_wider_than_its_column(book):
    _fail_if(wide_tables(book), f"Tables wider than their column at {VIEWPORT['width']} x {VIEWPORT['height']}")


def test_no_page_wider_than_the_window(book):
    _fail_if(wide_pages(book), f"Pages wider than a {VIEWPORT['width']} px window")


def test_math_is_typeset(book):
    assert any(f["page"] == MATH_PAGE for f in book), f"{MATH_PAGE} is not in _toc.yml"
    _fail_if(untypeset_math(book), "Math not rendered by MathJax")


def test_chapters_have_launch_buttons(book):
    _fail_if(missing_launch_buttons(book), "Chapters without launch buttons")


def test_no_forbidden_visible_text(book):
    _fail_if(forbidden_text(book), "Visible text that must not reach a reader (nbval, tracebacks, smoke profile)")


# ---------------------------------------------------------------------------------------------------
# Self-tests: the same checks on synthetic pages, one broken in every way and one clean

# A 4 x 4 red PNG.
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000004000000040802000000269309290000001049444154"
                    "789c63f8cfc000470cc47100ae930ff1d05f239e0000000049454e44ae426082")

BROKEN_PAGE = """<!doctype html><html><head><meta charset="utf-8"></head><body>
<main><article class="bd-article" style="width: 800px">
  <p>An equation: <span class="math">\\(z_c = F_{sq}(u_c)\\)</span></p>
  <img src="missing.png" alt="a figure that is not there">
  <img src="ok.png" alt="a figure">
  <div class="cell_output"><table style="width: 3000px"><thead><tr><th>model</th><th>top-1 err.</th></tr></thead>
    <tbody><tr><td>SE-ResNet-50</td><td>22.28</td></tr></tbody></table></div>
  <div class="cell_output" style="overflow-x: auto"><table><thead><tr><th>wide</th><th>scrolled</th></tr></thead>
    <tbody><tr><td><div style="width: 2000px">x</div></td><td>y</td></tr></tbody></table></div>
  <pre>Traceback (most recent call last):
NBVAL_IGNORE_OUTPUT
measured at reduced scale: smoke profile, fashion_mnist (256 train / 256 val images, 1 epoch)</pre>
</article></main></body></html>"""

CLEAN_PAGE = """<!doctype html><html><head><meta charset="utf-8"></head><body>
<main><article class="bd-article" style="width: 800px">
  <a href="https://colab.research.google.com/github/x/y/blob/main/notebooks/01.ipynb">Colab</a>
  <a href="https://mybinder.org/v2/gh/x/y/main?urlpath=tree/notebooks/01.ipynb">Binder</a>
  <p>An equation: <span class="math"><mjx-container class="MathJax">z</mjx-container></span></p>
  <img src="ok.png" alt="a figure">
  <div class="cell_output" style="overflow-x: auto"><table><thead><tr><th>model</th><th>top-1 err.</th></tr></thead>
    <tbody><tr><td>SE-ResNet-50</td><td>22.28</td></tr></tbody></table></div>
  <p>measured at reduced scale: cpu profile, fashion_mnist (the smoke test of the code is elsewhere)</p>
  <div class="highlight-bash notranslate"><div class="highlight"><pre>make book PROFILE=smoke    # a command the page documents</pre></div></div>
</article></main></body></html>"""


@pytest.fixture(scope="module")
def synthetic(browser, tmp_path_factory):
    """The checks' facts for the two synthetic pages, as chapters (notebooks/*) with required math."""
    site = tmp_path_factory.mktemp("site")
    (site / "notebooks").mkdir()
    (site / "notebooks" / "ok.png").write_bytes(PNG)
    (site / "notebooks" / "broken.html").write_text(BROKEN_PAGE, encoding="utf-8")
    (site / "notebooks" / "clean.html").write_text(CLEAN_PAGE, encoding="utf-8")
    with serve(site) as base:
        context = browser.new_context(viewport=VIEWPORT)
        tab = context.new_page()
        facts = {name: check_page(tab, f"{base}/notebooks/{name}.html", f"notebooks/{name}",
                                  screenshot=site / "shots" / f"{name}.png", math_required=True,
                                  math_timeout_ms=1000)       # no MathJax here: do not wait 20 s for it
                 for name in ("broken", "clean")}
        facts["missing"] = check_page(tab, f"{base}/notebooks/missing.html", "notebooks/missing")
        context.close()
    return facts


def test_self_check_catches_every_fault(synthetic):
    broken = [synthetic["broken"]]
    assert Path(synthetic["broken"]["screenshot"]).stat().st_size > 0
    assert page_errors([synthetic["missing"]]) == ["notebooks/missing: answered HTTP 404"]
    images = broken_images(broken)
    assert len(images) == 1 and "missing.png" in images[0] and "notebooks/broken" in images[0], images
    tables = wide_tables(broken)
    assert len(tables) == 2, tables
    assert "[model | top-1 err.]" in tables[0] and "is 3000 px wide" in tables[0] and "800 px" in tables[0], tables
    assert "[wide | scrolled]" in tables[1] and "scrolls sideways" in tables[1], tables
    pages = wide_pages(broken)
    assert len(pages) == 1 and "in a 1280 px window" in pages[0] and "table" in pages[0], pages
    math = untypeset_math(broken)
    assert len(math) == 1 and "no typeset math" in math[0], math
    buttons = missing_launch_buttons(broken)
    assert buttons == ["notebooks/broken: no Colab and no Binder launch button "
                       "(no link to colab.research.google.com, mybinder.org)"], buttons
    text = forbidden_text(broken)
    assert [line.split(":")[1].strip() for line in text] == ["traceback", "nbval marker", "smoke profile"], text


def test_self_check_passes_a_clean_page(synthetic):
    clean = [synthetic["clean"]]
    assert Path(synthetic["clean"]["screenshot"]).stat().st_size > 0
    assert synthetic["clean"]["math"] == 1 and len(synthetic["clean"]["images"]) == 1
    for check in (page_errors, broken_images, wide_tables, wide_pages, untypeset_math, missing_launch_buttons,
                  forbidden_text):
        assert check(clean) == [], (check.__name__, check(clean))
