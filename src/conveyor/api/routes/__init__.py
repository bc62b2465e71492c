"""The REST API's routers, one per noun, each a thin adapter over ``conveyor.Conveyor``:
a route parses its request, calls one service operation and answers the model that
operation returns, dumped as ``--json`` dumps it (``service.models.to_json``)."""

from __future__ import annotations

from fastapi import APIRouter

from conveyor.api.routes import endpoints, events, executions, health, rules, statements, tasks

ROUTERS: tuple[APIRouter, ...] = (
    tasks.router,
    endpoints.router,
    events.router,
    rules.router,
    executions.machines,
    executions.router,
    statements.router,
    health.router,
)
