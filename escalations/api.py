"""Operators' REST API: escalations and statistics (staff tier). Filled in by the escalations
work; routers exist so the API can mount them."""

from ninja import Router

escalations_router = Router(tags=["escalations"])
statistics_router = Router(tags=["statistics"])
