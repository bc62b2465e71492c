"""``/events``: the same answers as ``conveyor events list|put --json``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse

from conveyor.api.routes._common import Service, answer
from conveyor.service.models import EventsPage, PutEventsResult

router = APIRouter(prefix="/events", tags=["events"])


@router.get("", summary="Stored events, newest first, a page at a time", response_model=EventsPage)
def list_events(
    conveyor: Service, limit: int = 100, since: str | None = None, next_token: str | None = None
) -> JSONResponse:
    """``{"Events": [...], "NextToken": ...}``; pass ``next_token`` for the older page.
    ``since`` is an ISO 8601 time or an age (``15m``, ``2h``, ``7d``)."""
    return answer(conveyor.events(since, limit, next_token))


@router.post("", summary="Put an event; matching rules start executions", response_model=PutEventsResult)
def put_event(conveyor: Service, event: dict[str, Any] = Body(...)) -> JSONResponse:  # noqa: B008
    return answer(conveyor.put_event(event))
