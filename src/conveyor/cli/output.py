"""How the CLI prints the service's answers: ``--json`` prints the very model the
REST API answers with (``service.models.to_json``); otherwise a table or lines."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from pydantic import BaseModel

from conveyor.service import Conveyor
from conveyor.service.models import to_json


def print_json(model: BaseModel) -> None:
    typer.echo(json.dumps(to_json(model), indent=2))


@contextmanager
def opened_conveyor() -> Iterator[Conveyor]:
    """The Python API over the store CONVEYOR_HOME / CONVEYOR_STORE_URL name."""
    with Conveyor() as conveyor:
        yield conveyor
