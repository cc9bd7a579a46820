"""Status page in Debian's Chromium, driven by Playwright, over a real server."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from conftest import need

from recsync.status.app import StreamLimits, create_status_app
from recsync.status.reads import StatusReader
from recsync.status.server import StatusServer
from recsync.store import RecordStore, keys

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "status-page.png"
ORG = "org-a"
TOKEN = "token-a"
HOSTILE_NAME = "<script>window.pwned=1</script>"
WAIT_MS = 10_000

pytestmark = pytest.mark.e2e


@pytest.fixture
def store(real_redis: redis.Redis) -> RecordStore:
    return RecordStore(real_redis)


@pytest.fixture
def server(store: RecordStore, real_redis: redis.Redis) -> Iterator[StatusServer]:
    reader = StatusReader(store, real_redis)
    # The page shell contains no org data, so the test serves it without a token and
    # checks that the page sends the fragment's token on every data request.
    app = create_status_app(
        reader=reader,
        tokens={ORG: TOKEN},
        allow_unauthenticated=True,
        limits=StreamLimits(block_ms=500, max_stream_s=60),
    )
    with StatusServer(app) as running:
        yield running


@pytest.fixture
def page(server: StatusServer) -> Iterator[object]:
    need(os.path.exists(CHROMIUM), f"{CHROMIUM} is missing; apt-get install chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS
        )
        try:
            yield browser.new_page(viewport={"width": 1100, "height": 700})
        finally:
            browser.close()


def test_page_shows_live_transition(
    page: object, server: StatusServer, store: RecordStore, real_redis: redis.Redis
) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    store.track(ORG, "conv-1", "rec-hostile", deadline_s=600)
    store.claim(ORG, "rec-hostile", token="t", lease_s=10)
    store.mark_ready(
        ORG, "rec-hostile", token="t", metadata={"name": HOSTILE_NAME}, fingerprint="h"
    )
    store.track(ORG, "conv-1", "rec-live", deadline_s=600)
    store.claim(ORG, "rec-live", token="t", lease_s=10)
    store.defer(
        ORG, "rec-live", token="t", next_attempt_at=time.time() + 5, error="202"
    )
    real_redis.hset(keys.subscriber_status(ORG), mapping={"state": "connected"})
    real_redis.hset(keys.breaker(ORG, "recordingmetadata"), "state", "closed")

    page.goto(f"{server.url}/#token={TOKEN}")
    live_state = page.locator('tr[data-recording-id="rec-live"] td.state')
    expect(live_state).to_have_text("async-pending", timeout=WAIT_MS)
    expect(page.locator("#status-line")).to_contain_text("Live", timeout=WAIT_MS)
    expect(page.locator("#realtime-state")).to_have_text("connected")
    expect(page.locator("#breakers")).to_have_text("recordingmetadata: closed")

    store.claim(ORG, "rec-live", token="u", lease_s=10, force=True)
    store.mark_ready(
        ORG, "rec-live", token="u", metadata={"name": "Live call"}, fingerprint="x"
    )
    expect(live_state).to_have_text("ready", timeout=WAIT_MS)
    live_name = page.locator('tr[data-recording-id="rec-live"] td.name')
    expect(live_name).to_have_text("Live call", timeout=WAIT_MS)

    hostile_name = page.locator('tr[data-recording-id="rec-hostile"] td.name')
    expect(hostile_name).to_have_text(HOSTILE_NAME)
    assert page.evaluate("typeof window.pwned") == "undefined"
    assert page.locator("#recordings script").count() == 0

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)


def test_page_without_token_explains(page: object, server: StatusServer) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    page.goto(server.url + "/")
    expect(page.locator("#status-line")).to_contain_text("No token")


def test_page_wrong_token_shows_error(page: object, server: StatusServer) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    page.goto(f"{server.url}/#token=wrong")
    expect(page.locator("#status-line")).to_contain_text(
        "missing or invalid bearer token", timeout=WAIT_MS
    )
