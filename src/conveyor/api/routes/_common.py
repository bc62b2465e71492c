"""What every router shares: the service instance of the app, and the answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from conveyor.service import Conveyor
from conveyor.service.models import to_json


def _conveyor(request: Request) -> Conveyor:
    conveyor: Conveyor = request.app.state.conveyor
    return conveyor


Service = Annotated[Conveyor, Depends(_conveyor)]


def answer(model: BaseModel) -> JSONResponse:
    """The model as the CLI's ``--json`` prints it."""
    return JSONResponse(to_json(model))
