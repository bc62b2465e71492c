"""`conveyor worker [--store-url URL]`: claim and load segments of big tables'
full loads (``SegmentedLoadSettings.Workers: store``) on this host, until
SIGTERM or Ctrl-C. See docs/scale-workers.md."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from typing import Annotated

import typer

from conveyor.cli.app import app
from conveyor.cli.output import print_json
from conveyor.core.processes import stop_on_signals
from conveyor.service import Conveyor


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
    stop = threading.Event()
    with Conveyor(store_url=store_url) as conveyor, stop_on_signals(stop, signal.SIGTERM, signal.SIGINT):
        summary = conveyor.run_segment_worker(stop, idle_exit=idle_exit)
    if as_json:
        print_json(summary)
    else:
        typer.echo(f"worker {summary.worker}: {summary.segments_loaded} segments loaded")
