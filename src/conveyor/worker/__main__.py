"""``python -m conveyor.worker TASK --run ID [--mode start|resume|reload] [--log-file PATH]``:
run one claimed run of a task in this process until it ends (SIGTERM and SIGINT
stop it between batches). It logs (progress: one line per table state change) to
``--log-file``, bounded (``replication.run_logs``), else to stderr, in the format
``CONVEYOR_LOG_FORMAT`` names (text or json)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from conveyor.core.errors import ConveyorError
from conveyor.core.log_format import LogFormat, bind, configure_logging, log_format
from conveyor.events.lifecycle import FAILED, task_event
from conveyor.orchestration.bus import event_sink
from conveyor.replication.progress_lines import PlainProgress
from conveyor.replication.run_logs import RunLogHandler
from conveyor.replication.task_runner import run_claimed
from conveyor.replication.task_states import FAILED_STATUS, failure_stop_reason
from conveyor.replication.worker import WORKER_MODULE
from conveyor.stack.model import Stack
from conveyor.store.store import Store

log = logging.getLogger("conveyor.worker")  # not "__main__"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {WORKER_MODULE}")
    parser.add_argument("task")
    parser.add_argument("--run", type=int, required=True, help="the run claimed by `conveyor tasks start`")
    parser.add_argument("--mode", choices=["start", "resume", "reload"], default="start")
    parser.add_argument("--log-file", type=Path, help="the run's log (bounded); stderr when not given")
    args = parser.parse_args(argv)
    fmt: LogFormat = "text"
    refused = None
    try:
        fmt = log_format()
    except ValueError as exc:  # a CONVEYOR_LOG_FORMAT that is neither text nor json
        refused = exc
    configure_logging(fmt, handler=RunLogHandler(args.log_file) if args.log_file else None)
    if refused is not None:
        log.warning("%s; logging as text", refused)
    bind(task=args.task, run_id=args.run)
    log.info("task %s: worker pid %d for run %d", args.task, os.getpid(), args.run)
    store = Store.open()
    events = event_sink(store)
    progress = PlainProgress(logger=logging.getLogger("conveyor.progress"))
    try:
        document = store.stack_document()
        if document is None:
            raise ConveyorError("nothing is applied")
        stack = Stack.from_store_dict(document)
        status = run_claimed(store, stack, args.task, args.run, progress, args.mode, events=events)
    except ConveyorError as exc:
        # Before run_task took the run over: record why, or the task stays "starting".
        reason = failure_stop_reason(exc)
        store.finish_run(args.run, FAILED_STATUS, reason, str(exc))
        store.set_task_status(args.task, FAILED_STATUS, stop_reason=reason, error=str(exc))
        events(task_event(FAILED, args.task, str(exc)))
        log.error("task %s: %s", args.task, exc)
        return 1
    finally:
        store.close()
    log.info("task %s: %s", args.task, status)
    return 1 if status == FAILED_STATUS else 0


if __name__ == "__main__":
    sys.exit(main())
