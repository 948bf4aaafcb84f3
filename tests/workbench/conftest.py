"""Signed-in browsers-without-a-browser: one cookie session per demo account, as the workbench
pages have, and helpers to read and submit their forms."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.events.conftest import desk  # noqa: F401  (acting through the API, shared)


class Person:
    """A demo account signed in with a cookie session; ``csrf`` is what the page's forms carry."""

    def __init__(self, client: TestClient, csrf: str) -> None:
        self.client, self.csrf = client, csrf

    def get(self, path: str, **kw: Any) -> Any:
        return self.client.get(path, follow_redirects=False, **kw)

    def submit(self, path: str, data: dict[str, Any] | None = None, *, csrf: bool = True) -> Any:
        body = {**(data or {})}
        if csrf:
            body["csrf_token"] = self.csrf
        return self.client.post(path, data=body, follow_redirects=False)


@pytest.fixture
def person(app: FastAPI, credentials: dict[str, str]) -> Iterator[Callable[[str], Person]]:
    clients: list[TestClient] = []

    def sign_in(username: str) -> Person:
        c = TestClient(app, raise_server_exceptions=False)
        clients.append(c)
        r = c.post(
            "/api/v1/auth/login", json={"username": username, "password": credentials[username]}
        )
        assert r.status_code == 200, r.text
        return Person(c, str(r.json()["csrf_token"]))

    yield sign_in
    for c in clients:
        c.close()


def codes(html: str) -> list[str]:
    """The case numbers listed on a queue page, in order."""
    return re.findall(r'<tr class="case-row[^"]*" data-code="(\d{15})"', html)


def version(html: str, action: str) -> str:
    """The version a case page's form for ``action`` carries."""
    form = re.search(rf'actions/{action}".*?name="version" value="(\d+)"', html, re.S)
    assert form, f"the page offers {action}"
    return form.group(1)
