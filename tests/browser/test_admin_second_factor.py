"""An operator's second factor in real Chromium against a real server with
STAFF_MFA_REQUIRED=1: the first admin sign-in leads to the enrolment page (the secret is read
from the page, the code computed with pyotp), the recovery codes are shown once; the operator
signs out, signs in with password and code, and answers a customer's escalation live."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pyotp
import pytest

from tests.browser.conftest import Browsing
from tests.realtime import servers
from tests.realtime.servers import PASSWORD, Deployment, Server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SETUP = """
from accounts.models import User
from escalations.services import operators_group_ensure
olivia = User.objects.get(username="olivia")
olivia.display_name = "Olivia"
olivia.save()
olivia.groups.add(operators_group_ensure())
"""


@pytest.fixture
def site() -> Iterator[tuple[Deployment, Server]]:
    with servers.deployment(STAFF_MFA_REQUIRED="1") as shared:
        shared.manage("shell", "-c", SETUP)
        yield shared, shared.start_server()


def _password_step(page: Any, server: Server) -> None:
    page.goto(f"{server.http}/admin/login/?next=/admin/escalations/escalation/")
    page.locator("#id_username").fill("olivia")
    page.locator("#id_password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def test_operator_enrols_signs_in_with_a_code_and_answers_an_escalation(
    site: tuple[Deployment, Server], browse: Browsing
) -> None:
    from playwright.sync_api import expect

    _, server = site
    page = browse.page(responses=False)

    # Without a factor, the API refuses the operator a token and says why.
    status, body = servers.api(
        server, "POST", "/api/v1/auth/token", {"username": "olivia", "password": PASSWORD}
    )
    assert (status, body["mfa_enrolment_required"]) == (403, True)

    # First admin sign-in: the enrolment page comes before any other.
    _password_step(page, server)
    expect(page).to_have_url(f"{server.http}/admin/mfa/")
    qr = page.locator("#mfa-qr")
    expect(qr).to_be_visible()
    assert qr.get_attribute("src").startswith("data:image/svg+xml")
    assert page.evaluate("document.querySelector('#mfa-qr').naturalWidth") > 0  # it drew
    secret = page.locator("#mfa-secret").get_attribute("data-secret")
    assert secret is not None
    assert page.locator("#mfa-secret").inner_text().replace(" ", "") == secret
    page.goto(f"{server.http}/admin/escalations/escalation/")  # any other page: back here
    expect(page).to_have_url(f"{server.http}/admin/mfa/")
    assert page.locator("#mfa-secret").get_attribute("data-secret") == secret

    totp = pyotp.TOTP(secret)
    page.locator("#id_password").fill(PASSWORD)
    page.locator("#id_code").fill(totp.now())
    page.get_by_role("button", name="Turn on two-factor authentication").click()
    codes = page.locator("#recovery-codes li")
    expect(codes).to_have_count(10)
    page.get_by_role("link", name="Continue").click()
    expect(page).to_have_url(f"{server.http}/admin/")

    # Sign out, then in again: password, then a code (the next step's: the enrolment's own
    # code is spent, and a code is accepted once).
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_text("Logged out")).to_be_visible()
    _password_step(page, server)
    expect(page).to_have_url(f"{server.http}/admin/login/code/")
    page.locator("#id_code").fill(totp.at(time.time() + 30))
    page.get_by_role("button", name="Verify").click()
    expect(page).to_have_url(f"{server.http}/admin/escalations/escalation/")
    expect(page.locator("#parley-live")).to_have_text("● Live")

    # A customer asks for a human; the escalation appears live; the operator answers it.
    customer_token, sent = servers.first_message(
        server, "alice", "I want to talk to a human please"
    )
    assert sent["status"] == "escalated"
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(1)
    rows.first.locator("th a, td a").first.click()
    page.locator("#id_message").fill("Hello, this is Olivia. How can I help?")
    page.get_by_role("button", name="Send reply").click()
    expect(page.locator("#parley-messages li.parley-role-operator")).to_contain_text(
        "Hello, this is Olivia. How can I help?"
    )
    _, history = servers.api(
        server,
        "GET",
        f"/api/v1/conversations/{sent['conversation_id']}/history",
        token=customer_token,
    )
    operator_messages = [m["content"] for m in history["messages"] if m["role"] == "operator"]
    assert operator_messages == ["Hello, this is Olivia. How can I help?"]
    assert browse.problems == []
    page.context.close()
