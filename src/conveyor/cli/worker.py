"""`conveyor worker [--store-url URL]`: claim and load segments of big tables'
full loads (``SegmentedLoadSettings.Workers: store``) on this host, until
SIGTERM or Ctrl-C. See docs/scale-workers.md."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from typing import Annotated

import typer

from conveyor.cli.app import app, applied_stack
from conveyor.replication.segment_worker import run_worker
from conveyor.replication.worker import stop_on_signals
from conveyor.stack.model import Stack
from conveyor.store.segments import SegmentQueue, worker_name
from conveyor.store.store import Store


@app.command()
def worker(
    store_url: Annotated[
        str | None,
        typer.Option(
            "--store-url",
            help="The metadata store shared with the tasks (postgresql://...); "
            "default CONVEYOR_STORE_URL, else the SQLite store under CONVEYOR_HOME.",
        ),
    ] = None,
    idle_exit: Annotated[
        float | None,
        typer.Option("--idle-exit", help="Exit after this many seconds without a segment to load."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable summary at exit.")] = False,
) -> None:
    """Claim segments of full loads from the store and load them; run one per
    core, on as many hosts as share the store. Stops between batches on SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    store = Store.open(url=store_url)
    stop = threading.Event()
    owner = worker_name()

    def stack() -> Stack:
        return applied_stack(store)

    try:
        with stop_on_signals(stop, signal.SIGTERM, signal.SIGINT):
            done = run_worker(SegmentQueue(store), stack, stop, idle_exit=idle_exit, owner=owner)
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps({"worker": owner, "segments_loaded": done}))
    else:
        typer.echo(f"worker {owner}: {done} segments loaded")
