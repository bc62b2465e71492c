"""Reloading single tables of a change-capture task while capture goes on for
the others (`conveyor tasks reload NAME --table SCHEMA.TABLE`).

A reload begins at the stream's current position: from then on the table's
changes are held (reduced by key, not applied), and a full load of that one
table reads a fresh source snapshot, taken after that position, in a thread of
its own. When the load has committed, the held changes are applied on top:
those older than the snapshot replay onto rows that already have them, which
applying by key makes harmless, so the table converges to the source. Only
then is the reload recorded as done; a stop or crash before that leaves it
requested, and the next run loads the table again from the start.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Protocol

from conveyor.connectors.changes import CachesTargetShapes, ChangeApplier
from conveyor.core.errors import ConfigError
from conveyor.core.schema import TableRef
from conveyor.replication.mapped_table import MappedTable

if TYPE_CHECKING:
    from conveyor.replication.cdc.capture_table import CaptureTable

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0


class TableReloader(Protocol):
    """What the task gives the capture to reload tables with."""

    def requested(self) -> list[TableRef]:
        """Source tables whose reload is requested (polled about once a second)."""
        ...

    def describe(self, ref: TableRef) -> MappedTable | None:
        """The table's mapping as the source has it now (None: it is gone)."""
        ...

    def begin(self, mapped: MappedTable) -> None:
        """Record that the table is being reloaded, so that a stop or a crash
        before ``done`` reloads it again in the next run."""
        ...

    def load(self, mapped: MappedTable) -> None:
        """The full load of one table from a fresh snapshot (runs in a thread);
        raises when it failed or was stopped."""
        ...

    def done(self, table: CaptureTable) -> None:
        """The reload and the changes held during it are on the target."""
        ...


class ReloadingCapture(Protocol):
    """What a reload needs of the capture it runs in (the runner's ChangeCapture)."""

    task: str
    applier: ChangeApplier
    tables: dict[TableRef, CaptureTable]
    stop: threading.Event

    @property
    def judges_conflicts(self) -> bool: ...

    def settle(self, force: bool = False) -> None: ...

    def suspend(self, target_ref: TableRef, reason: str) -> None: ...

    def request_row_forms(self) -> None: ...

    def request(self, action: Callable[[], None]) -> None: ...

    def recapture(self, mapped: MappedTable) -> None: ...

    def forget_errors(self, target_ref: TableRef) -> None: ...


class TableReloads:
    """The reloads under way in one capture."""

    def __init__(self, reloader: TableReloader, task: str) -> None:
        self.reloader = reloader
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"reload-{task}")
        self._running: dict[TableRef, Future[None]] = {}
        self._next_poll = 0.0

    def step(self, capture: ReloadingCapture) -> None:
        """Finish the reloads that ended; start those newly requested."""
        for ref, future in list(self._running.items()):
            if future.done():
                del self._running[ref]
                self._finish(capture, ref, future)
        now = time.monotonic()
        if now < self._next_poll:
            return
        self._next_poll = now + POLL_SECONDS
        for ref in self.reloader.requested():
            table = capture.tables.get(ref)
            if table is not None and ref not in self._running:
                self._start(capture, ref, table)

    def _start(self, capture: ReloadingCapture, ref: TableRef, table: CaptureTable) -> None:
        capture.settle()
        mapped = self.reloader.describe(ref)
        if mapped is None:
            capture.suspend(table.mapped.target.ref, "reload: the source table no longer exists")
            return
        try:
            capture.recapture(mapped)  # its changes from here on, before the load reads it
        except ConfigError as exc:
            capture.suspend(table.mapped.target.ref, f"reload: the table cannot be captured again: {exc}")
            return
        self.begin(capture, ref, table, mapped)

    def begin(
        self, capture: ReloadingCapture, ref: TableRef, table: CaptureTable, mapped: MappedTable
    ) -> None:
        """Reload ``table`` as ``mapped`` from the stream's current position on."""
        self.reloader.begin(mapped)
        for target in dict.fromkeys((table.mapped.target.ref, mapped.target.ref)):
            capture.forget_errors(target)  # its escalation counts start over
        table.suspended = None
        table.reloading = True
        # The held changes replay onto loaded rows that may have them already:
        # not apply conflicts, so not judged (ErrorBehavior.ApplyError*).
        table.check_keys = False
        table.renew(mapped)
        capture.request_row_forms()
        log.info("task %s: reloading table %s while capture goes on", capture.task, ref)
        self._running[ref] = self._thread.submit(self.reloader.load, mapped)

    def _finish(self, capture: ReloadingCapture, ref: TableRef, future: Future[None]) -> None:
        table = capture.tables.get(ref)
        if table is None or not table.reloading:
            return  # dropped, or suspended again (DDL) meanwhile
        error = future.exception()
        if error is not None:
            table.reloading = False
            table.check_keys = capture.judges_conflicts
            table.renew()  # the held changes go: the next reload reads them anew
            if not capture.stop.is_set():
                capture.suspend(table.mapped.target.ref, f"reload failed: {error}")
            return
        capture.settle()  # nothing in flight: the applier may forget the old shape
        if isinstance(capture.applier, CachesTargetShapes):
            capture.request(capture.applier.forget_shapes)
        table.reloading = False
        capture.settle(force=True)  # the held changes, after the loaded rows
        if capture.judges_conflicts:
            # From here on its changes are judged again, which needs them decoded.
            table.check_keys = True
            capture.request_row_forms()
        log.info("task %s: table %s reloaded", capture.task, ref)
        self.reloader.done(table)

    def close(self) -> None:
        self._thread.shutdown(wait=True, cancel_futures=True)
