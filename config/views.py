"""Pages served outside the API."""

import json

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from escalations.services import operator_notice_markers


@require_GET
def chat_page(request: HttpRequest) -> HttpResponse:
    """Parley's own chat client (public; it authenticates against the API from the browser)."""
    return render(
        request,
        "chat/index.html",
        {"operator_notices": json.dumps(operator_notice_markers())},
    )
