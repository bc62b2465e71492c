"""``/rules``: the same answer as ``conveyor rules list --json``."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from conveyor.api.routes._common import Service, answer
from conveyor.service.models import RuleList

router = APIRouter(prefix="/rules", tags=["rules"])


@router.get("", summary="Rules: event patterns and schedules", response_model=RuleList)
def list_rules(conveyor: Service) -> JSONResponse:
    return answer(conveyor.list_rules())
