"""The chat page's markup obeys the CSP without a browser: no inline script, style or event
handler attributes, and its assets are served from our own static files."""

from __future__ import annotations

import re

import pytest
from django.test import Client


@pytest.fixture
def page() -> tuple[str, dict[str, str]]:
    response = Client().get("/")
    assert response.status_code == 200
    return response.content.decode(), dict(response.headers)


def test_page_is_public_and_carries_the_csp(page: tuple[str, dict[str, str]]) -> None:
    _, headers = page
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "style-src 'self'" in csp
    assert "connect-src 'self'" in csp
    assert headers["X-Frame-Options"] == "DENY"


def test_no_inline_script_style_or_handlers(page: tuple[str, dict[str, str]]) -> None:
    html, _ = page
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, flags=re.S | re.I)
    assert scripts, "the page loads its script"
    for attributes, body in scripts:
        assert 'src="/static/chat/' in attributes
        assert body.strip() == ""
    assert re.search(r"\sstyle\s*=", html, flags=re.I) is None
    assert re.search(r"<style\b", html, flags=re.I) is None
    assert re.search(r"\son[a-z]+\s*=", html, flags=re.I) is None
    assert "http://" not in html
    assert "https://" not in html  # no CDN


@pytest.mark.parametrize("asset", ["/static/chat/chat.js", "/static/chat/chat.css"])
def test_assets_are_served(asset: str) -> None:
    response = Client().get(asset)
    assert response.status_code == 200
    assert b"".join(response.streaming_content if response.streaming else [response.content])


def test_message_text_is_never_assigned_as_html() -> None:
    from pathlib import Path

    script = (Path(__file__).resolve().parents[2] / "static/chat/chat.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script
