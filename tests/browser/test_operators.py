"""A support team in the admin, in real Chromium against real server and worker processes
(ASSIGNMENT_MODE=auto, a first-response SLA of a few seconds):

- Olivia signs in and lands on the queue; her own dot turns online; Oscar opens the inbox in a
  second browser and Olivia sees him come online, go away and leave.
- A customer's hand-off is assigned to Olivia at once. While she is away the next one waits:
  the queue says "1 waiting"; back online, it is assigned to her within 2 s.
- Nobody replies: the worker's periodic job records the breach and the row is highlighted.
- The list's search box finds the escalation by the words of the customer's message, with
  the match marked.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import Browsing, admin_sign_in
from tests.realtime import servers
from tests.realtime.servers import BASE_DIR, PASSWORD, Deployment, Server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

QUEUE = "/admin/escalations/escalation/"
SETUP = f"""
from accounts.models import User
from escalations.services import operators_group_ensure
oscar = User.objects.create_user("oscar", "oscar@example.com", {PASSWORD!r}, first_name="Oscar",
                                 is_staff=True)
oscar.groups.add(operators_group_ensure())
"""


@pytest.fixture
def site() -> Iterator[tuple[Deployment, Server]]:
    with servers.deployment(ASSIGNMENT_MODE="auto", SLA_FIRST_RESPONSE_MINUTES="0.1") as shared:
        shared.manage("shell", "-c", SETUP)
        server = shared.start_server()
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "run_worker", "--periodic-interval", "1"],
            cwd=BASE_DIR,
            env=shared.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            yield shared, server
        finally:
            worker.terminate()
            worker.wait(timeout=20)


def _sign_in(page: Any, server: Server, username: str) -> None:
    admin_sign_in(page, server.http, PASSWORD, username=username, next_path="/admin/")


def _hand_off(server: Server, username: str, text: str) -> dict[str, Any]:
    _, body = servers.first_message(server, username, text)
    assert body["status"] == "escalated", body
    return body


def test_a_team_works_the_queue(site: tuple[Deployment, Server], browse: Browsing) -> None:
    from playwright.sync_api import expect

    _, server = site
    olivia = browse.page()

    # Signing in lands on the queue, not Django's index.
    _sign_in(olivia, server, "olivia")
    expect(olivia).to_have_url(re.compile(re.escape(QUEUE) + "$"))
    expect(olivia.get_by_role("heading", name="Escalations to handle")).to_be_visible()
    expect(olivia.locator("#parley-live")).to_have_text("● Live")
    team = olivia.locator("#parley-operators")
    expect(team.locator("li[data-status=online]")).to_have_text(re.compile("Olivia"))

    # Oscar opens the inbox in another browser: Olivia sees him online, away, gone.
    oscar = browse.page(watched=False)
    _sign_in(oscar, server, "oscar")
    expect(oscar.locator("#parley-live")).to_have_text("● Live")
    oscar_dot = team.locator("li", has_text="Oscar")
    expect(oscar_dot).to_have_attribute("data-status", "online")
    oscar.get_by_role("button", name="Set me away").click()
    expect(oscar.locator(".parley-me-away")).to_have_text("You are away")
    expect(oscar_dot).to_have_attribute("data-status", "away")
    oscar.context.close()
    expect(oscar_dot).to_have_attribute("data-status", "offline")

    # A hand-off goes to the one operator online, at once: the row appears assigned to her.
    first = _hand_off(server, "alice", "I want a human, my parcel never arrived")
    rows = olivia.locator("#result_list tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first.locator("td.field-assignee")).to_have_text("Olivia")
    expect(olivia.locator("#parley-queue-count")).to_have_text("0")
    expect(team.locator("li", has_text="Olivia").locator(".parley-operator-load")).to_have_text(
        "1/5"
    )

    # Away, the next one waits in the queue; back online, it is hers within 2 s.
    olivia.get_by_role("button", name="Set me away").click()
    expect(olivia.locator(".parley-me-away")).to_be_visible()
    _hand_off(server, "bob", "I want to talk to a human please")
    expect(olivia.locator("#parley-queue-count")).to_have_text("1")
    expect(rows).to_have_count(2)
    olivia.get_by_role("button", name="I'm back").click()
    expect(olivia.locator("#parley-queue-count")).to_have_text("0", timeout=2_000)
    expect(olivia.locator("#result_list td.field-assignee")).to_have_text(["Olivia", "Olivia"])

    # Nobody replied within the SLA (6 s): the worker records the breach, the rows light up.
    breached = olivia.locator(
        "#result_list tbody tr.parley-breached, #result_list tbody tr:has(.parley-sla-breached)"
    )
    expect(breached).to_have_count(2, timeout=20_000)
    expect(olivia.locator(".parley-sla-breached").first).to_contain_text("first reply overdue")
    status, overdue = servers.api(
        server, "GET", "/api/v1/escalations?sla=breached", token=servers.sign_in(server, "olivia")
    )
    assert status == 200
    assert first["conversation_id"] in [item["conversation_id"] for item in overdue["items"]]

    # The search box finds the conversation by its words, the match marked.
    olivia.locator("#searchbar").fill("parcel")
    olivia.locator("#searchbar").press("Enter")
    hits = olivia.locator("#parley-search-hits li")
    expect(hits).to_have_count(1)
    expect(hits.first.locator("mark")).to_have_text("parcel")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("alice")

    assert browse.problems == []
    olivia.context.close()
