"""How Conveyor's processes log: plain text (the default) or one JSON object per
line (``--log-format json`` or ``CONVEYOR_LOG_FORMAT=json``), for a log shipper.

Every process configures logging through :func:`configure_logging`: the CLI (its
root option sets the environment variable, so worker processes it spawns inherit
the choice), ``conveyor serve`` and the task worker. A JSON line carries ``ts``
(UTC, ISO 8601), ``level``, ``logger``, ``message``, and ``task`` and ``run_id``
where known: bound for the whole process (a worker runs one run of one task, see
:func:`bind`) or given per record (``log.info(..., extra={"task": name})``)."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, TextIO

LOG_FORMAT_ENV = "CONVEYOR_LOG_FORMAT"
LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

# Context fields a record may carry (``extra=``) or the process binds once.
CONTEXT_FIELDS = ("task", "run_id")
_bound: dict[str, Any] = {}
# The attributes every LogRecord has: anything else on a record came from ``extra=``.
# (uvicorn's ``color_message`` repeats the message with terminal colours.)
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",
}


def log_format(explicit: str | None = None) -> LogFormat:
    """The format asked for: ``explicit``, else the environment, else text.
    Raises ValueError for a name that is neither."""
    chosen = (explicit or os.environ.get(LOG_FORMAT_ENV) or "text").strip().lower()
    if chosen not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, got {chosen!r}")
    return chosen


def choose_log_format(explicit: str | None) -> LogFormat:
    """The format for this process and the processes it starts (workers inherit
    the environment variable this sets)."""
    fmt = log_format(explicit)
    os.environ[LOG_FORMAT_ENV] = fmt
    return fmt


def bind(**fields: Any) -> None:
    """Fields every JSON line of this process carries from now on (a worker: its
    task and run). ``None`` removes a field."""
    for key, value in fields.items():
        if value is None:
            _bound.pop(key, None)
        else:
            _bound[key] = value


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines in a message or a
    traceback are escaped by JSON, so a line is always a whole record)."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        document.update(_bound)
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_"):
                document[key] = value
        if record.exc_info:
            document["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            document["stack"] = self.formatStack(record.stack_info)
        return json.dumps(document, default=str, ensure_ascii=False)


def formatter(fmt: LogFormat) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT)


def configure_logging(
    fmt: LogFormat | None = None,
    level: int = logging.INFO,
    handler: logging.Handler | None = None,
    stream: TextIO | None = None,
) -> LogFormat:
    """Route the root logger to ``handler`` (else a stream handler on ``stream``,
    else stderr) in format ``fmt`` (else :func:`log_format`), replacing what was
    there. In JSON, an uncaught exception is logged as a record too, so the
    process's last words are a JSON line. Returns the format used."""
    fmt = fmt or log_format()
    if handler is None:
        handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(fmt))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level)
    if fmt == "json":
        logging.captureWarnings(True)  # a warning is a record, not a bare stderr line
        sys.excepthook = _log_uncaught
        threading.excepthook = _log_uncaught_in_thread
    return fmt


def _log_uncaught(kind: type[BaseException], value: BaseException, traceback: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, traceback)
        return
    logging.getLogger("conveyor").critical("uncaught exception", exc_info=(kind, value, traceback))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None or issubclass(args.exc_type, SystemExit):
        return
    name = args.thread.name if args.thread is not None else "?"
    logging.getLogger("conveyor").critical(
        "uncaught exception in thread %s", name, exc_info=(args.exc_type, args.exc_value, args.exc_traceback)
    )
