"""`vidlang serve` in a real browser: headless Debian Chromium driven by Playwright against a
real uvicorn server. A person's path: type a query, read the results, click a moment, watch the
player seek there and play; reload a shared URL and see the same results.

Chromium is /usr/bin/chromium (or $VIDLANG_CHROMIUM); Playwright only drives it (never
``playwright install``). If it cannot start, these tests fail with the reason - no skip.
The screenshot goes to the test's tmp folder, and also to $VIDLANG_SERVE_SCREENSHOT when set
(docs/img/serve.png was made that way).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from serve_support import live_server

pytestmark = pytest.mark.browser
CHROMIUM = os.environ.get("VIDLANG_CHROMIUM", "/usr/bin/chromium")
QUERY = os.environ.get("VIDLANG_SERVE_QUERY", "the red square moves to the left")


@pytest.fixture(scope="module")
def server(serve_demo):
    from vidlang.serve import Collection, create_app

    collection = Collection.load(serve_demo.index, serve_demo.grounding, serve_demo.web)
    with live_server(create_app(collection)) as base:
        yield base
    collection.close()


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        pytest.fail(f"python playwright is not installed ({e}); pip install playwright (no browser download needed)")
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install -y chromium (or set VIDLANG_CHROMIUM)")
    manager = sync_playwright().start()
    try:
        chromium = manager.chromium.launch(executable_path=CHROMIUM, headless=True)
    except Exception as e:  # the reason Chromium could not start, as the failure message
        manager.stop()
        pytest.fail(f"Chromium at {CHROMIUM} did not start: {e}")
    yield chromium
    chromium.close()
    manager.stop()


def _results(page) -> list[tuple[str, str]]:
    return page.eval_on_selector_all(
        "article.result", "els => els.map(e => [e.dataset.video, e.querySelector('.score').textContent])")


def _offsite(requests: list[str], base: str) -> list[str]:
    return [u for u in requests if not u.startswith(base) and not u.startswith("data:")]


def test_search_click_a_moment_and_the_player_jumps_there(server, browser, tmp_path) -> None:
    import httpx

    page = browser.new_page(viewport={"width": 1100, "height": 900})
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(server + "/")
    page.fill("#q", QUERY)
    page.fill("#k", "3")
    page.click("form#search button[type=submit]")
    page.wait_for_selector("article.result")
    assert "q=" in page.url and "k=3" in page.url  # the query is in the URL
    api = httpx.get(server + "/api/search", params={"q": QUERY, "k": 3}).json()["results"]
    shown = _results(page)
    assert [vid for vid, _ in shown] == [r["video_id"] for r in api]
    assert [score for _, score in shown] == [f"score {r['score']:.3f}" for r in api]
    # every thumbnail really loaded (a decoded image, not a broken icon)
    widths = page.eval_on_selector_all("article.result img", "els => els.map(e => e.complete && e.naturalWidth)")
    assert widths == [192] * len(api)

    # click a listed moment (or a timeline window) that starts at least 1 s in and lasts >= 0.5 s,
    # so the seek is visible
    target = page.evaluate("""() => {
        const els = [...document.querySelectorAll('article.result .moment, article.result .win')];
        const el = els.find(e => +e.dataset.start >= 1.0 && +e.dataset.end - +e.dataset.start >= 0.5);
        if (!el) return null;
        el.setAttribute('id', 'clicked');
        return {video: el.dataset.video, start: +el.dataset.start, end: +el.dataset.end, kind: el.className};
    }""")
    assert target is not None, "no moment starting after 1 s in the results"
    # record where the player lands after each seek (playing from 0 would also pass the start
    # after a while; a seek is what must put it there)
    page.evaluate("""() => { window.seeks = []; const p = document.getElementById('player');
        p.addEventListener('seeked', () => window.seeks.push(p.currentTime)); }""")
    page.click("#clicked")
    page.wait_for_function(
        """([start]) => { const p = document.getElementById('player');
            return p.readyState >= 2 && !p.seeking && window.seeks.length > 0; }""",
        arg=[target["start"]], timeout=15_000)
    landed = page.evaluate("() => window.seeks[0]")
    assert abs(landed - target["start"]) < 0.5, (landed, target)
    state = page.evaluate("() => { const p = document.getElementById('player'); "
                          "return {t: p.currentTime, src: p.currentSrc, error: p.error && p.error.code}; }")
    assert target["start"] - 0.5 < state["t"] < target["end"] + 0.5
    assert state["src"].endswith(f"/media/{target['video']}") and state["error"] is None
    # and it plays: time moves on from the moment's start
    page.wait_for_function("([start]) => document.getElementById('player').currentTime > start + 0.2",
                           arg=[target["start"]], timeout=15_000)
    shot = tmp_path / "serve.png"
    page.screenshot(path=str(shot), full_page=False)
    assert shot.stat().st_size > 10_000
    if os.environ.get("VIDLANG_SERVE_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["VIDLANG_SERVE_SCREENSHOT"])
    assert not _offsite(requests, server), "the page loaded something from another host"
    page.close()


def test_a_shared_url_shows_the_same_results_after_reload(server, browser) -> None:
    first = browser.new_page()
    first.goto(server + "/")
    first.fill("#q", QUERY)
    first.fill("#k", "4")
    first.click("form#search button[type=submit]")
    first.wait_for_selector("article.result")
    url, typed = first.url, _results(first)
    first.close()
    assert len(typed) == 4

    shared = browser.new_page()  # a new visitor opens the shared link, then reloads it
    shared.goto(url)
    shared.wait_for_selector("article.result")
    assert _results(shared) == typed
    assert shared.input_value("#q") == QUERY and shared.input_value("#k") == "4"
    shared.reload()
    shared.wait_for_selector("article.result")
    assert _results(shared) == typed
    shared.close()
