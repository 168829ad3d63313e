import sys

from django.contrib import admin
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.http import require_GET

from config.api import api
from config.middleware import unavailable_response
from config.operations import health_probe, ready_probe
from config.views import chat_page
from core.request_context import current_request_id

urlpatterns = [
    path("", chat_page, name="chat"),
    path("health", require_GET(health_probe), name="health"),
    path("ready", require_GET(ready_probe), name="ready"),
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
]


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def handler404(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse({"detail": "Not found"}, status=404)
    return HttpResponse("Not found", status=404, content_type="text/plain")


def handler400(request: HttpRequest, exception: Exception) -> HttpResponse:
    return JsonResponse({"detail": "Bad request"}, status=400)


def handler403(request: HttpRequest, exception: Exception) -> HttpResponse:
    return JsonResponse({"detail": "Forbidden"}, status=403)


def handler500(request: HttpRequest) -> HttpResponse:
    # Called while the exception is being handled: an outage of the database or Redis met
    # outside a view (a session saved by middleware) is a 503 with Retry-After, not a 500.
    unavailable = unavailable_response(sys.exc_info()[1] or Exception())
    if unavailable is not None:
        return unavailable
    return JsonResponse(
        {"detail": "Internal server error", "request_id": current_request_id()}, status=500
    )
