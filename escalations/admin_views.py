"""The admin's statistics page (/admin/statistics/, operators only).

The figures are those of GET /statistics (one selector for both). Charts are drawn server-side
as inline SVG: no chart library, no CDN, no inline script or style, so the page works under
the site's CSP (`script-src 'self'; style-src 'self'`); colours come from
static/admin/parley/parley.css.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import forms
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from pydantic import ValidationError as PydanticValidationError

from accounts.operators import is_operator
from escalations.inbox import csat_compute
from escalations.schemas import StatisticsParams
from escalations.selectors import (
    DailyCount,
    OperatorFigures,
    Period,
    activity_per_day,
    operator_statistics,
    statistics_compute,
)

CHART_DAYS = 30
# SVG user units; the css scales the drawing to the page width.
CHART_WIDTH = 720
CHART_HEIGHT = 160
CHART_TOP = 16  # room for the largest value's label
CHART_BOTTOM = 20  # room for the day labels
BAR_GAP = 4
INTENT_ROW = 22
INTENT_LABEL = 130
INTENT_BAR_MAX = CHART_WIDTH - INTENT_LABEL - 110  # room for "1234 (56.7 %)"


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: int
    show_label: bool
    label_x: float
    label_anchor: str  # SVG text-anchor: the first and last labels stay inside the drawing


@dataclass(frozen=True)
class DayChart:
    title: str
    total: int
    peak: int
    bars: list[Bar]
    width: int = CHART_WIDTH
    height: int = CHART_HEIGHT
    baseline: int = CHART_HEIGHT - CHART_BOTTOM


@dataclass(frozen=True)
class IntentRow:
    name: str
    count: int
    share: float
    y: int
    bar_width: float
    label_y: int
    value_x: float


def _day_chart(title: str, series: list[DailyCount]) -> DayChart:
    peak = max((point.count for point in series), default=0)
    slot = CHART_WIDTH / max(len(series), 1)
    drawable = CHART_HEIGHT - CHART_TOP - CHART_BOTTOM
    bars = []
    for index, point in enumerate(series):
        last = index == len(series) - 1
        height = round(drawable * point.count / peak, 2) if peak else 0.0
        bars.append(
            Bar(
                x=round(index * slot + BAR_GAP / 2, 2),
                y=round(CHART_HEIGHT - CHART_BOTTOM - height, 2),
                width=round(slot - BAR_GAP, 2),
                height=height,
                label=point.day.strftime("%b %d"),
                value=point.count,
                # One date label a week, counted back from today, keeps the axis readable.
                show_label=(len(series) - 1 - index) % 7 == 0,
                label_x=CHART_WIDTH if last else round(index * slot + slot / 2, 2),
                label_anchor="end" if last else "middle",
            )
        )
    return DayChart(title=title, total=sum(p.count for p in series), peak=peak, bars=bars)


def _intent_rows(intents: dict[str, int]) -> tuple[list[IntentRow], int]:
    total = sum(intents.values())
    peak = max(intents.values(), default=0)
    rows = []
    for index, (name, count) in enumerate(sorted(intents.items(), key=lambda i: (-i[1], i[0]))):
        rows.append(
            IntentRow(
                name=name,
                count=count,
                share=round(100 * count / total, 1) if total else 0.0,
                y=index * INTENT_ROW,
                bar_width=round(INTENT_BAR_MAX * count / peak, 2) if peak else 0.0,
                label_y=index * INTENT_ROW + 15,
                value_x=round(INTENT_LABEL + INTENT_BAR_MAX * count / peak + 6, 2)
                if peak
                else INTENT_LABEL + 6,
            )
        )
    return rows, max(len(rows), 1) * INTENT_ROW


def human_duration(seconds: float | None) -> str:
    """12.5 → "13 s", 4000 → "1 h 6 min"; None → "—" (nothing to measure yet)."""
    if seconds is None:
        return "—"
    total = round(seconds)
    if total < 60:
        return f"{total} s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


@dataclass(frozen=True)
class OperatorRow:
    """One operator's line on the statistics page, with the bars of the response chart."""

    figures: OperatorFigures
    first_p50: str
    first_p90: str
    resolution_p50: str
    resolution_p90: str
    y: int
    label_y: int
    p50_width: float
    p90_width: float
    value_x: float


OPERATOR_ROW = 26


def _operator_rows(figures: list[OperatorFigures]) -> tuple[list[OperatorRow], int]:
    """Per operator: the table's durations and a horizontal bar chart of first-response p50
    (solid) over p90 (pale), scaled to the largest p90."""
    peak = max(
        (f.first_response["p90"] or 0.0 for f in figures),
        default=0.0,
    )
    rows = []
    for index, item in enumerate(figures):
        p50 = item.first_response["p50"] or 0.0
        p90 = item.first_response["p90"] or 0.0
        p90_width = round(INTENT_BAR_MAX * p90 / peak, 2) if peak else 0.0
        rows.append(
            OperatorRow(
                figures=item,
                first_p50=human_duration(item.first_response["p50"]),
                first_p90=human_duration(item.first_response["p90"]),
                resolution_p50=human_duration(item.resolution["p50"]),
                resolution_p90=human_duration(item.resolution["p90"]),
                y=index * OPERATOR_ROW,
                label_y=index * OPERATOR_ROW + 16,
                p50_width=round(INTENT_BAR_MAX * p50 / peak, 2) if peak else 0.0,
                p90_width=p90_width,
                value_x=round(INTENT_LABEL + p90_width + 6, 2),
            )
        )
    return rows, max(len(rows), 1) * OPERATOR_ROW


class PeriodForm(forms.Form):
    """`?from=&to=` of the statistics page: the API's rules (StatisticsParams), as a form."""

    from_ = forms.DateField(required=False, label="From", widget=forms.DateInput({"type": "date"}))
    to = forms.DateField(required=False, label="To", widget=forms.DateInput({"type": "date"}))

    def __init__(self, data: Any) -> None:
        values = {"from_": data.get("from", ""), "to": data.get("to", "")}
        super().__init__(values if any(values.values()) else None)

    def period(self) -> Period | None:
        """The valid period, or None (the form then carries the errors)."""
        if not self.is_bound:
            return Period()
        if not self.is_valid():
            return None
        try:
            params = StatisticsParams.model_validate(
                {"from": self.cleaned_data["from_"], "to": self.cleaned_data["to"]}
            )
        except PydanticValidationError as exc:
            self.add_error(None, "; ".join(error["msg"] for error in exc.errors()))
            return None
        return Period(start=params.from_, end=params.to)


def statistics_view(request: HttpRequest) -> HttpResponse:
    from django.contrib import admin

    # The admin site lets every staff account in; the figures are for operators, as over
    # GET /statistics.
    if not is_operator(request.user):  # type: ignore[arg-type]
        raise PermissionDenied
    now = timezone.now()
    form = PeriodForm(request.GET)
    period = form.period()
    figures: dict[str, Any] = {
        **statistics_compute(now=now, period=period or Period()),
        **csat_compute(period=period or Period()),
    }
    activity = activity_per_day(days=CHART_DAYS, now=now)
    intent_rows, intent_height = _intent_rows(figures["intents"])
    operator_rows, operator_height = _operator_rows(
        operator_statistics(now=now, period=period or Period())
    )
    context = {
        **admin.site.each_context(request),
        "title": "Statistics",
        "figures": figures,
        "period_form": form,
        "period": period,
        "escalation_rate_percent": round(100 * figures["escalation_rate"], 1),
        "bot_resolved_percent": round(100 * figures["bot_resolved_rate"], 1),
        "sla_breach_percent": round(100 * figures["sla_breach_rate"], 1),
        "avg_resolution": human_duration(figures["avg_resolution_seconds"]),
        "median_first_response": human_duration(figures["median_first_response_seconds"]),
        "percentile_rows": [
            (
                label,
                human_duration(figures["first_response_seconds"][key]),
                human_duration(figures["resolution_seconds"][key]),
            )
            for key, label in (("p50", "50 %"), ("p90", "90 %"), ("p99", "99 %"))
        ],
        "charts": [
            _day_chart(f"Messages per day (last {CHART_DAYS} days)", activity["messages"]),
            _day_chart(f"Escalations per day (last {CHART_DAYS} days)", activity["escalations"]),
        ],
        "intent_rows": intent_rows,
        "intent_height": intent_height,
        "operator_rows": operator_rows,
        "operator_height": operator_height,
        "chart_width": CHART_WIDTH,
        "intent_label_width": INTENT_LABEL,
        "generated_at": now,
    }
    return TemplateResponse(request, "admin/parley/statistics.html", context)
