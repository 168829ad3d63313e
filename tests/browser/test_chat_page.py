"""The chat page at `/` in real Chromium against a real uvicorn process.

A customer signs in, chats with the agent, asks for a human, sees the operator's reply (sent
through the API) arrive live, survives a server restart by resuming with `after_seq`, and an
attacker's `<script>` shows as text. Runs on the in-memory channel layer (one process) and,
with REDIS_URL set, on Redis.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import Browsing
from tests.realtime import servers
from tests.realtime.servers import PASSWORD, Deployment, Server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

XSS = '<script>window.__pwned = 1</script><img src="x" onerror="window.__pwned = 2">'
REPLY_DURING_OUTAGE = "Sorry for the wait, I'm back online now."


@pytest.fixture
def site() -> Iterator[tuple[Deployment, Server]]:
    with servers.deployment() as shared:
        yield shared, shared.start_server()


def _conversation_id(page: Any) -> int:
    match = re.fullmatch(r"Conversation #(\d+)", page.locator("#conversation-title").inner_text())
    assert match, page.locator("#conversation-title").inner_text()
    return int(match.group(1))


def test_customer_chats_live_with_agent_and_operator(
    site: tuple[Deployment, Server], browse: Browsing
) -> None:
    from playwright.sync_api import expect

    shared, server = site
    page = browse.page(responses=False)
    problems = browse.problems

    page.goto(f"{server.http}/")
    expect(page.get_by_role("heading", name="Sign in to chat with support")).to_be_visible()
    form = page.locator("#sign-in-form")
    form.get_by_label("Username").fill("alice")
    form.get_by_label("Password").fill("wrong password")
    form.get_by_role("button", name="Sign in").click()
    expect(page.locator("#auth-error")).to_have_text("Wrong username or password.")
    assert [p for p in problems if "status of 401" not in p] == []
    problems.clear()

    form.get_by_label("Password").fill(PASSWORD)
    form.get_by_role("button", name="Sign in").click()
    expect(page.locator("#account-name")).to_have_text("alice")
    expect(page.locator("#conversation-title")).to_have_text("New conversation")
    expect(page.get_by_label("Your message")).to_be_focused()

    # A first message starts a conversation (REST), then the page subscribes.
    page.get_by_label("Your message").fill("Hello there")
    page.keyboard.press("Enter")
    log = page.locator("#message-log")
    expect(log.locator("li.message--customer .message__content")).to_have_text(["Hello there"])
    expect(log.locator("li.message--agent")).to_have_count(1)
    expect(page.locator("#conversation-title")).to_have_text(re.compile(r"Conversation #\d+"))
    expect(page.locator("#connection-state")).to_have_text("Live")
    conversation_id = _conversation_id(page)

    # Over the websocket now: the agent answers live.
    page.get_by_label("Your message").fill("I have a question about my invoice")
    page.get_by_role("button", name="Send").click()
    expect(log.locator("li.message--customer .message__content")).to_have_text(
        ["Hello there", "I have a question about my invoice"]
    )
    expect(log.locator("li.message--agent")).to_have_count(2)
    expect(log.locator("li.message--pending")).to_have_count(0)

    # Asking for a human escalates: announced once (the agent's reply), the hand-off marked as
    # an event line, the status in the header; no banner repeats it.
    page.get_by_label("Your message").fill("I want to talk to a human please")
    page.keyboard.press("Enter")
    # Nobody has joined yet: the badge says so, not "With an operator".
    expect(page.locator("#conversation-status")).to_have_text("Waiting for an operator")
    expect(log.locator("li.message--agent").last).to_contain_text("human operator")
    expect(log.locator("li.message--system").last).to_have_text(
        re.compile("Conversation passed to the support team.")
    )
    expect(page.locator("#notice")).to_be_hidden()

    # The operator replies through the API; it appears live, signed with the operator's name.
    operator = servers.sign_in(server, "olivia")
    reply = {"message": "Hi Alice, Olivia here. How can I help?"}
    assert servers.staff_post(server, operator, conversation_id, "reply", reply) == 201
    expect(log.locator("li.message--operator .message__content")).to_have_text(
        ["Hi Alice, Olivia here. How can I help?"]
    )
    expect(log.locator("li.message--operator .message__author")).to_have_text(["Olivia"])
    expect(log.locator("li.message--system .message__content").last).to_have_text(
        "Olivia joined the conversation."
    )
    expect(page.locator("#conversation-status")).to_have_text("With an operator")
    expect(page.locator("#notice")).to_be_hidden()

    # Markup in messages is text, from the operator and from the customer alike.
    reply = {"message": XSS}
    assert servers.staff_post(server, operator, conversation_id, "reply", reply) == 201
    expect(log.locator("li.message--operator .message__content").last).to_have_text(XSS)
    page.get_by_label("Your message").fill("<b>not bold</b><script>window.__pwned = 3</script>")
    page.keyboard.press("Enter")
    expect(log.locator("li.message--pending")).to_have_count(0)  # acknowledged
    expect(log.locator("li.message--customer[data-seq] .message__content").last).to_have_text(
        "<b>not bold</b><script>window.__pwned = 3</script>"
    )
    assert log.locator("script, img, b").count() == 0
    assert page.evaluate("window.__pwned") is None

    # A network drop (the server restarts): the page reconnects with after_seq and shows what
    # was written meanwhile, once.
    seqs_before = [
        int(s)
        for s in log.locator("li.message").evaluate_all("nodes => nodes.map(n => n.dataset.seq)")
    ]
    shared.stop([server])
    expect(page.locator("#connection-state")).to_contain_text("Reconnecting")
    shared.manage(
        "shell",
        "-c",
        (
            "from accounts.models import User\n"
            "from escalations.services import escalation_reply\n"
            f"escalation_reply(conversation_id={conversation_id}, "
            f"actor=User.objects.get(username='olivia'), text={REPLY_DURING_OUTAGE!r})\n"
        ),
    )
    server = shared.start_server(port=server.port)
    expect(log.locator("li.message--operator .message__content").last).to_have_text(
        REPLY_DURING_OUTAGE, timeout=30_000
    )
    expect(page.locator("#connection-state")).to_have_text("Live")
    seqs_after = [
        int(s)
        for s in log.locator("li.message").evaluate_all("nodes => nodes.map(n => n.dataset.seq)")
    ]
    assert seqs_after == list(range(1, len(seqs_after) + 1))
    assert seqs_after == [*seqs_before, seqs_before[-1] + 1]

    # Chat still works over the new socket.
    page.get_by_label("Your message").fill("Thanks!")
    page.keyboard.press("Enter")
    expect(log.locator("li.message--customer[data-seq] .message__content").last).to_have_text(
        "Thanks!"
    )
    expect(log.locator("li.message--pending")).to_have_count(0)

    # Phone width: one column, nothing wider than the screen, the composer reachable.
    page.set_viewport_size({"width": 375, "height": 740})
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    expect(page.get_by_role("button", name="Send")).to_be_visible()

    # A reload keeps the session (sessionStorage) and reopens the conversation from history.
    page.reload()
    expect(page.locator("#conversation-title")).to_have_text(f"Conversation #{conversation_id}")
    expect(log.locator("li.message--operator")).to_have_count(3)
    expect(page.locator("#connection-state")).to_have_text("Live")

    assert [
        p for p in problems if "ERR_CONNECTION_REFUSED" not in p and "WebSocket connection" not in p
    ] == []
    page.context.close()


def test_tokens_are_refreshed_without_dropping_the_socket(browse: Browsing) -> None:
    """Access tokens live 24 s here: the page refreshes before expiry (at 80 %) and hands the
    new token to the open socket, which therefore outlives the first token."""
    import json
    import time

    from playwright.sync_api import expect

    with servers.deployment(ACCESS_TOKEN_MINUTES="0.4") as shared:
        server = shared.start_server()
        page = browse.page(None, watched=False)
        sockets: list[Any] = []
        auth_frames: list[str] = []

        def watch(socket: Any) -> None:
            sockets.append(socket)
            socket.on(
                "framesent",
                lambda payload: (
                    auth_frames.append(payload)
                    if '"type":"auth"' in str(payload).replace(" ", "")
                    else None
                ),
            )

        page.on("websocket", watch)
        page.goto(f"{server.http}/")
        form = page.locator("#sign-in-form")
        form.get_by_label("Username").fill("alice")
        form.get_by_label("Password").fill(PASSWORD)
        form.get_by_role("button", name="Sign in").click()
        page.get_by_label("Your message").fill("I want to talk to a human please")
        page.keyboard.press("Enter")
        expect(page.locator("#connection-state")).to_have_text("Live")
        conversation_id = _conversation_id(page)
        first_token = json.loads(page.evaluate("sessionStorage.getItem('parley.session')"))
        signed_in_at = time.monotonic()

        # Past the first token's expiry (24 s; the page refreshes at about 19 s).
        page.wait_for_timeout(max(0, 30 - (time.monotonic() - signed_in_at)) * 1000)
        session = json.loads(page.evaluate("sessionStorage.getItem('parley.session')"))
        assert session["access"] != first_token["access"]
        assert session["refresh"] != first_token["refresh"]  # rotated
        assert len(sockets) == 1  # never reconnected
        assert len(auth_frames) == 2  # the first auth frame and the re-auth
        expect(page.locator("#connection-state")).to_have_text("Live")

        operator = servers.sign_in(server, "olivia")
        reply = {"message": "Still here after your token rotated."}
        assert servers.staff_post(server, operator, conversation_id, "reply", reply) == 201
        expect(page.locator("li.message--operator .message__content")).to_have_text(
            ["Still here after your token rotated."]
        )
        assert len(sockets) == 1
        page.context.close()
