"""``GET /tasks/{name}/logs``: a task run's worker log, a chunk at a time (pass
the answer's ``next_offset`` back as ``offset`` to poll for what follows)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from conveyor.core.errors import NotFoundError
from conveyor.replication.run_logs import READ_LIMIT, logged_run, read_log, run_ended, run_log_path
from conveyor.store.store import Store


def task_logs_router(store: Store) -> APIRouter:
    router = APIRouter()

    @router.get(
        "/tasks/{name}/logs", tags=["tasks"], summary="A run's worker log (the latest run by default)"
    )
    def task_logs(
        name: str, run: int | None = None, offset: int | None = None, limit: int = READ_LIMIT
    ) -> dict[str, Any]:
        """Without ``offset``, the log's last ``limit`` bytes (whole lines); with it,
        from there on. ``running`` is false once the run ended and its log is complete."""
        if name not in ((store.stack_document() or {}).get("tasks") or {}):
            raise NotFoundError(f"no task named {name!r}")
        run_id = logged_run(store, name, run)
        chunk = read_log(run_log_path(name, run_id), offset, limit)
        return {
            "task": name,
            "run": run_id,
            "offset": chunk.offset,
            "next_offset": chunk.next_offset,
            "size": chunk.size,
            "rotated": chunk.rotated,
            "running": not run_ended(store, run_id),
            "text": chunk.text,
        }

    return router
