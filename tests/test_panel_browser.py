"""The panel pack in a real headless browser: loads offline with no console error, runs no injected script,
renders something.  Skipped when no chromium is installed (CI: ``apt-get install -y chromium``)."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from test_report_fixtures import build_store, config

from ecins_link.report import write_outputs

pytestmark = pytest.mark.browser
BROWSER = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0"]
INJECTED = "<script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\">"


def _chromium(url: str, *extra: str) -> tuple[str, str]:
    if BROWSER is None:
        pytest.skip("no chromium installed (apt-get install -y chromium)")
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run([BROWSER, *FLAGS, f"--user-data-dir={profile}", *extra, url],
                              capture_output=True, text=True, timeout=120)
    return proc.stdout, proc.stderr


def _console_problems(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


def _png_colours(path: Path) -> int:
    """Number of distinct colours in an 8-bit RGB/RGBA non-interlaced PNG (enough for chromium shots)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, ctype = struct.unpack(">IIBB", chunk[:10])
            assert depth == 8 and ctype in (2, 6)
            channels = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(height, 1 + width * channels)
    img = np.zeros((height, width * channels), dtype=np.int32)
    prev = np.zeros(width * channels, dtype=np.int32)
    for y in range(height):
        ftype, row = raw[y, 0], raw[y, 1:].astype(np.int32)
        if ftype == 0:
            cur = row
        elif ftype == 2:
            cur = (row + prev) % 256
        else:  # Sub, Average, Paeth: sequential within the row
            cur = np.zeros_like(row)
            for x in range(len(row)):
                a = cur[x - channels] if x >= channels else 0
                b, c = prev[x], (prev[x - channels] if x >= channels else 0)
                if ftype == 1:
                    pred = a
                elif ftype == 3:
                    pred = (a + b) // 2
                else:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                cur[x] = (row[x] + pred) % 256
        img[y], prev = cur, cur
    pixels = img.reshape(height, width, channels)[:, :, :3].reshape(-1, 3)
    return len(np.unique(pixels, axis=0))


@pytest.fixture(scope="module")
def pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if BROWSER is None:
        pytest.skip("no chromium installed (apt-get install -y chromium)")
    tmp = tmp_path_factory.mktemp("browser")
    store = build_store(tmp / "s.duckdb")
    with store.stage("inject"):
        store.con.execute("UPDATE person_attributes SET display_name = ? WHERE person_id = 'P1'", [INJECTED])
        store.con.execute("UPDATE person_records SET forenames = ? WHERE source = 'housing_tenants' "
                          "AND record_key = 'T1|1'", [INJECTED])
    write_outputs(store, config(), tmp / "out")
    store.close()
    return tmp / "out" / "panel"


def test_index_loads_without_console_errors(pack: Path) -> None:
    dom, stderr = _chromium((pack / "index.html").as_uri(), "--dump-dom")
    assert _console_problems(stderr) == []
    assert 'id="worklist"' in dom and "invisible to any single agency" in dom


def test_case_pages_load_and_injected_script_is_inert(pack: Path) -> None:
    pages = sorted((pack / "cases").glob("*.html"))
    assert pages
    shown = False
    for page in pages:
        dom, stderr = _chromium(page.as_uri(), "--dump-dom")
        assert _console_problems(stderr) == [], page.name
        assert "pwned</title>" not in dom and "<title>Case" in dom
        assert "<script" not in dom.lower() and "<img" not in dom.lower()
        shown |= "&lt;script&gt;document.title='pwned'&lt;/script&gt;" in dom
    assert shown, "the injected name must be visible as text"


def test_screenshot_is_not_blank(pack: Path, tmp_path: Path) -> None:
    page = next(p for p in sorted((pack / "cases").glob("*.html")) if "<svg" in p.read_text(encoding="utf-8"))
    shot = tmp_path / "shot.png"
    _, stderr = _chromium(page.as_uri(), f"--screenshot={shot}", "--window-size=900,700")
    assert shot.exists(), stderr[-500:]
    assert _png_colours(shot) > 20


MID_WORD_BREAKS = """() => {
  const out = [];
  for (const td of document.querySelectorAll('td, th, h3, li')) {
    const walker = document.createTreeWalker(td, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const text = node.textContent, range = document.createRange();
      let prevTop = null;
      for (let i = 0; i < text.length; i++) {
        range.setStart(node, i); range.setEnd(node, i + 1);
        const r = range.getClientRects()[0];
        if (!r) { prevTop = null; continue; }
        if (prevTop !== null && r.top > prevTop + 2 && /[A-Za-z0-9]/.test(text[i]) && /[A-Za-z0-9]/.test(text[i - 1]))
          out.push(text.slice(Math.max(0, i - 8), i) + '|' + text.slice(i, i + 8));
        prevTop = r.top;
      }
    }
  }
  return out;
}"""


def _playwright_page():  # noqa: ANN202
    pytest.importorskip("playwright.sync_api")
    from playwright.sync_api import sync_playwright

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("no chromium installed (apt-get install -y chromium)")
    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"]
    return sync_playwright, exe, args


def test_no_word_is_broken_mid_word_on_a_narrow_screen(pack: Path) -> None:
    sync_playwright, exe, args = _playwright_page()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=args)
        page = browser.new_page(viewport={"width": 560, "height": 800})
        broken = {}
        for html in [pack / "index.html", *sorted((pack / "cases").glob("*.html"))]:
            page.goto(html.as_uri())
            found = page.evaluate(MID_WORD_BREAKS)
            if found:
                broken[html.name] = found[:5]
        browser.close()
    assert broken == {}


def test_case_prints_on_a4_with_marking_and_case_id(pack: Path, tmp_path: Path) -> None:
    sync_playwright, exe, args = _playwright_page()
    case = sorted((pack / "cases").glob("*.html"))[0]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=args)
        page = browser.new_page()
        page.goto(case.as_uri())
        page.emulate_media(media="print")
        assert page.evaluate("getComputedStyle(document.querySelector('.marking')).display") == "none"
        rules = page.evaluate("""() => [...document.styleSheets].flatMap(s => [...s.cssRules])
                                   .filter(r => r.type === CSSRule.PAGE_RULE).map(r => r.cssText)""")
        pdf = page.pdf(prefer_css_page_size=True)
        browser.close()
    assert any("size: a4" in r.lower() for r in rules)
    assert any("OFFICIAL-SENSITIVE" in r for r in rules)
    ref = case.stem.removeprefix("case_")
    assert any(ref in r and "top-right" in r for r in rules), rules
    boxes = {tuple(round(float(x)) for x in m.split()) for m in
             re.findall(rb"/MediaBox \[([0-9. ]+)\]", pdf) for m in [m.decode()]}
    assert boxes == {(0, 0, 595, 842)}  # A4 in points, every page


def test_worklist_status_filter_hides_rows_without_script(tmp_path: Path) -> None:
    """The pack's worklist filters by status with radio buttons and CSS only (its policy forbids script):
    'lapsed' shows only lapsed cases, 'current' every case but those, 'all' every case."""
    sync_playwright, exe, args = _playwright_page()
    store = build_store(tmp_path / "s.duckdb")
    with store.stage("statuses"):
        store.con.execute("ALTER TABLE flags ADD COLUMN IF NOT EXISTS status VARCHAR")
        # one flag lapsed, the others current (new): a case's status is that of its most pressing flag
        first = store.con.execute("SELECT min(flag_id) FROM flags").fetchone()[0]
        store.con.execute("UPDATE flags SET status = CASE WHEN flag_id = ? THEN 'lapsed' ELSE 'new' END", [first])
    write_outputs(store, config(), tmp_path / "out")
    store.close()
    index = tmp_path / "out" / "panel" / "index.html"
    html = index.read_text(encoding="utf-8")
    assert "<script" not in html.lower()
    lapsed_rows, all_rows = html.count('<tr class="st-lapsed">'), html.count("<tr class=\"st-")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=args)
        page = browser.new_page()
        page.goto(index.as_uri())
        visible = "() => [...document.querySelectorAll('#worklist tbody tr')].filter(r => r.offsetParent !== null).length"
        shown = {}
        for choice in ("lapsed", "current", "new", "all"):
            page.click(f"label[for=st-{choice}]")
            shown[choice] = page.evaluate(visible)
        browser.close()
    assert all_rows >= 2 and 0 < lapsed_rows < all_rows
    assert shown == {"lapsed": lapsed_rows, "current": all_rows - lapsed_rows, "new": all_rows - lapsed_rows,
                     "all": all_rows}
