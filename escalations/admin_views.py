from django.http import HttpRequest, HttpResponse


def statistics_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse("statistics: not built yet", content_type="text/plain")
