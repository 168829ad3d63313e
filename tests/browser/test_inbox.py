"""The operators' live inbox in real Chromium, against a real uvicorn process, beside the
customer's chat page.

An operator signed in to the admin watches the escalation list; a customer asks for a human and
the escalation appears without a reload (unread count in the bar and the title). On the
escalation page the customer's new message appears without a reload; a saved reply goes into
the composer with one click and reaches the customer's chat page, signed with the operator's
name. After the operator resolves, the customer rates the conversation. The run saves
screenshots of the list and the page at 1280 px (`screenshots_dir`: a temporary folder, or
docs/screenshots/ for the README through `make screenshots`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import Browsing, admin_sign_in
from tests.realtime import servers
from tests.realtime.servers import PASSWORD, Deployment, Server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SAVED_REPLY_BODY = "I've refunded the duplicate charge; it shows on your statement in 3-5 days."
SETUP = f"""
from accounts.models import User
from escalations.models import SavedReply
from escalations.services import operators_group_ensure
olivia = User.objects.get(username="olivia")
olivia.display_name = "Olivia"
olivia.save()
olivia.groups.add(operators_group_ensure())
SavedReply.objects.create(title="Refund issued", body={SAVED_REPLY_BODY!r})
SavedReply.objects.create(title="Anything else?", body="Is there anything else I can help with?")
"""


@pytest.fixture
def site() -> Iterator[tuple[Deployment, Server]]:
    with servers.deployment() as shared:
        shared.manage("shell", "-c", SETUP)
        yield shared, shared.start_server()


def _admin_sign_in(page: Any, server: Server) -> None:
    admin_sign_in(
        page, server.http, PASSWORD, username="olivia", next_path="/admin/escalations/escalation/"
    )


def _chat_sign_in(page: Any, server: Server) -> None:
    page.goto(f"{server.http}/")
    form = page.locator("#sign-in-form")
    form.get_by_label("Username").fill("alice")
    form.get_by_label("Password").fill(PASSWORD)
    form.get_by_role("button", name="Sign in").click()


def test_operator_works_an_escalation_live(
    site: tuple[Deployment, Server], browse: Browsing, screenshots_dir: Path
) -> None:
    from playwright.sync_api import expect

    _, server = site

    # The operator's list, live, before anything is escalated.
    admin = browse.page()
    _admin_sign_in(admin, server)
    expect(admin.locator("#parley-live")).to_have_text("● Live")
    base_title = admin.title()

    # A customer asks for a human (over the API): the row appears within 2 s, no reload.
    _, body = servers.first_message(server, "alice", "I want to talk to a human please")
    assert body["status"] == "escalated"
    conversation_id = body["conversation_id"]
    rows = admin.locator("#result_list tbody tr")
    expect(rows).to_have_count(1, timeout=2_000)
    expect(rows.first).to_contain_text("alice")
    expect(rows.first).to_have_class(re.compile("parley-new"))
    expect(admin.locator("#parley-unread")).to_have_text("1 new")
    expect(admin).to_have_title(f"(1) {base_title}")

    # The row came in live (the list was empty: a whole new results form), and selecting
    # still works on it: "select all" ticks it and the counter counts it.
    admin.locator("#action-toggle").click()
    expect(rows.first.locator("input.action-select")).to_be_checked()
    expect(rows.first).to_have_class(re.compile("selected"))
    expect(admin.locator(".action-counter")).to_have_text("1 of 1 selected")
    admin.locator("#action-toggle").click()
    expect(rows.first.locator("input.action-select")).not_to_be_checked()
    expect(admin.locator(".action-counter")).to_have_text("0 of 1 selected")

    # Not clipped at 1280 px: nothing scrolls sideways, and the last column ends inside the
    # results area, left of the filters.
    assert admin.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert admin.evaluate(
        "(() => { const r = document.querySelector('#changelist .results');"
        " return r.scrollWidth <= r.clientWidth; })()"
    )
    last_column = admin.locator("#result_list tbody td.field-assignee").first.bounding_box()
    filters = admin.locator("#changelist-filter").bounding_box()
    assert last_column is not None
    assert filters is not None
    assert last_column["x"] + last_column["width"] <= filters["x"]
    admin.screenshot(path=str(screenshots_dir / "inbox-list.png"))

    # The customer opens the chat page on that conversation.
    chat = browse.page((1000, 800))
    _chat_sign_in(chat, server)
    expect(chat.locator("#conversation-title")).to_have_text(f"Conversation #{conversation_id}")
    expect(chat.locator("#connection-state")).to_have_text("Live")

    # The operator opens the escalation page: the transcript, the composer under it.
    rows.first.locator("th a, td a").first.click()
    expect(admin.locator("#parley-live")).to_have_text("● Live")
    expect(admin.locator("#id_message")).to_be_visible()
    composer_top = admin.locator("#id_message").bounding_box()
    assert composer_top is not None
    assert composer_top["y"] < 900  # the composer is on the first screen, not 1 000 px down
    assert admin.locator("input[value=Close], a.closelink").count() == 0

    # The customer writes; the message appears on the operator's page without a reload.
    chat.get_by_label("Your message").fill("My invoice shows the same charge twice.")
    chat.keyboard.press("Enter")
    customer_messages = admin.locator("#parley-messages li.parley-role-customer")
    expect(customer_messages.last).to_contain_text(
        "My invoice shows the same charge twice.", timeout=2_000
    )

    # A saved reply is one click away; the operator sends it from the page.
    admin.get_by_role("button", name="Refund issued").click()
    expect(admin.locator("#id_message")).to_have_value(SAVED_REPLY_BODY)
    admin.screenshot(path=str(screenshots_dir / "inbox-escalation.png"))
    admin.get_by_role("button", name="Send reply").click()
    expect(admin.locator("#parley-messages li.parley-role-operator")).to_contain_text(
        SAVED_REPLY_BODY
    )

    # The customer's chat page shows it live, signed with the operator's display name.
    log = chat.locator("#message-log")
    expect(log.locator("li.message--operator .message__content")).to_have_text([SAVED_REPLY_BODY])
    expect(log.locator("li.message--operator .message__author")).to_have_text(["Olivia"])
    expect(log.locator("li.message--system .message__content").last).to_have_text(
        "Olivia joined the conversation."
    )

    # An internal note stays in the admin.
    admin.locator("#id_note").fill("Refund done in the billing tool.")
    admin.get_by_role("button", name="Add note").click()
    expect(admin.locator(".parley-notes")).to_contain_text("Refund done in the billing tool.")

    # The operator resolves; the customer is asked for a rating and gives one.
    admin.locator("#id_resolution_notes").fill("Refunded the duplicate charge.")
    admin.get_by_role("button", name="Resolve").click()
    expect(admin.locator("#parley-status")).to_have_text("Resolved")
    expect(log.locator("li.message--system .message__content").last).to_have_text(
        re.compile("^Olivia marked this conversation as resolved")
    )
    rating = chat.locator("#rating")
    expect(rating).to_be_visible()
    # The rating panel takes its room from the log, not from the closing line: that line is
    # still inside the log's visible area.
    closing = log.locator("li.message--system").last
    chat.wait_for_timeout(300)  # the panel's layout and the log's scroll settle
    line, frame = closing.bounding_box(), log.bounding_box()
    assert line is not None
    assert frame is not None
    assert frame["y"] <= line["y"]
    assert line["y"] + line["height"] <= frame["y"] + frame["height"] + 1
    rating.get_by_label("5").check()
    rating.get_by_label("Comment (optional)").fill("Quick and friendly, thanks!")
    rating.get_by_role("button", name="Send rating").click()
    # The thanks line is in the page from the start, hidden: only its visibility says the
    # rating reached the server (to_have_text alone would pass while the POST is in flight).
    thanks = chat.locator("#rating-thanks")
    expect(thanks).to_be_visible()
    expect(thanks).to_have_text("Thank you for your feedback!")
    # A reload reopens the resolved conversation without asking for the rating again.
    chat.reload()
    expect(log.locator("li.message--operator .message__content")).to_have_text([SAVED_REPLY_BODY])
    expect(chat.locator("#conversation-status")).to_have_text("Resolved")
    expect(rating).to_be_hidden()
    assert "Refund done in the billing tool." not in chat.content()

    # The customer comes back and is escalated again; that escalation's resolution is a new
    # one to rate, so the page asks again even though this conversation was rated before.
    chat.get_by_label("Your message").fill("Sorry, I need a human again please")
    chat.keyboard.press("Enter")
    expect(chat.locator("#conversation-status")).to_have_text("Waiting for an operator")
    expect(rating).to_be_hidden()
    operator = servers.sign_in(server, "olivia")
    notes = {"resolution_notes": "Answered again."}
    assert servers.staff_post(server, operator, conversation_id, "resolve", notes) == 200
    expect(chat.locator("#conversation-status")).to_have_text("Resolved")
    expect(rating).to_be_visible()
    rating.get_by_label("4").check()
    rating.get_by_role("button", name="Send rating").click()
    expect(thanks).to_be_visible()

    stats_status, figures = servers.api(
        server, "GET", "/api/v1/statistics", token=servers.sign_in(server, "olivia")
    )
    assert stats_status == 200
    assert (figures["csat_average"], figures["csat_responses"]) == (4.5, 2)

    assert browse.problems == []
    chat.context.close()
    admin.context.close()
