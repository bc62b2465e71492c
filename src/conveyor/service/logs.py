"""A task run's worker log through the service: a chunk (the REST API polls with
offsets) or the whole text, followed until the run ends (the CLI)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from conveyor.orchestration.bus import event_sink
from conveyor.replication.run_logs import (
    follow_log,
    logged_run,
    read_log,
    run_ended,
    run_log_path,
    whole_log,
)
from conveyor.replication.worker import reap_stale
from conveyor.service.models import TaskLog
from conveyor.service.tasks import applied_task_stack
from conveyor.store.store import Store


def task_log(
    store: Store, home: Path | None, name: str, run: int | None, offset: int | None, limit: int
) -> TaskLog:
    applied_task_stack(store, name)
    run_id = logged_run(store, name, run, home)
    chunk = read_log(run_log_path(name, run_id, home), offset, limit)
    return TaskLog(
        task=name,
        run=run_id,
        offset=chunk.offset,
        next_offset=chunk.next_offset,
        size=chunk.size,
        rotated=chunk.rotated,
        running=not run_ended(store, run_id),
        text=chunk.text,
    )


def task_log_text(store: Store, home: Path | None, name: str, run: int | None, follow: bool) -> Iterator[str]:
    """The run's whole log (older part first); with ``follow``, then what is
    appended until the run ends. A worker that died unannounced (SIGKILL) is
    recorded as failed on the way, so the follow ends with its run."""
    applied_task_stack(store, name)
    run_id = logged_run(store, name, run, home)
    path = run_log_path(name, run_id, home)

    def ended() -> bool:
        reap_stale(store, name, event_sink(store))
        return run_ended(store, run_id)

    yield from follow_log(path, ended) if follow else whole_log(path)
