"""A live server on a free port and Debian's headless Chromium driven by Playwright."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from sqlalchemy.orm import sessionmaker

from cityops import migrate
from cityops.app import create_app
from cityops.auth import audit
from cityops.config import Settings
from cityops.db import make_engine, transaction
from cityops.demo import accounts as demo_accounts
from cityops.demo import district
from tests.conftest import FAST_HASH

CHROMIUM = Path(os.environ.get("CITYOPS_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@dataclass(frozen=True)
class LiveServer:
    url: str
    credentials: dict[str, str]


@pytest.fixture(scope="session")
def live(
    tmp_path_factory: pytest.TempPathFactory, small_demo: district.DemoDistrict
) -> Iterator[LiveServer]:
    url = f"sqlite:///{tmp_path_factory.mktemp('live') / 'cityops.db'}"
    settings = Settings(database_url=url, demo=True, **FAST_HASH)  # type: ignore[arg-type]
    audit.install()
    engine = make_engine(url)
    migrate.upgrade(engine)
    with transaction(sessionmaker(bind=engine)) as session:
        district.load(session, small_demo)
        rows = demo_accounts.ensure(session, settings)
    assert rows is not None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Idle keep-alive connections are kept a minute, not uvicorn's 5 s: a test that pauses a
    # few seconds between two API calls on one connection (screenshots, accessibility checks
    # on a slow machine) otherwise races the server closing it ("socket hang up").
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, engine=engine),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            timeout_keep_alive=60,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("live server did not start")
        time.sleep(0.05)
    yield LiveServer(f"http://127.0.0.1:{port}", {u: p for u, _label, p in rows})
    server.should_exit = True
    thread.join(timeout=10)
    engine.dispose()


@pytest.fixture
def live_server(live: LiveServer) -> str:
    return live.url


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        message = f"Chromium not found at {CHROMIUM} (make test installs Debian's chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1600, "height": 900}, locale="en-US")  # type: ignore[attr-defined]
    pg = context.new_page()
    yield pg
    context.close()


def sign_in(
    page: object, live: LiveServer, username: str = "demo-admin", next_path: str = "/"
) -> None:
    """Through the real log-in form, as a person would."""
    page.goto(f"{live.url}/login?next={next_path}")  # type: ignore[attr-defined]
    page.fill("#username", username)  # type: ignore[attr-defined]
    page.fill("#password", live.credentials[username])  # type: ignore[attr-defined]
    page.click("button[type=submit]")  # type: ignore[attr-defined]
    page.wait_for_load_state()  # type: ignore[attr-defined]


@pytest.fixture
def signed_in(page: object, live: LiveServer) -> object:
    sign_in(page, live)
    return page


def shot(page: object, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))  # type: ignore[attr-defined]
    return path
