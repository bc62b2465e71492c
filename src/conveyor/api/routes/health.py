"""``/health``: the service is up."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from conveyor import __version__
from conveyor.api.routes._common import Service

router = APIRouter(tags=["service"])


@router.get("/health", summary="The service is up")
def health(conveyor: Service) -> dict[str, Any]:
    return {
        "status": "ok",
        "version": __version__,
        "running_executions": conveyor.orchestration.executions.running(),
    }
