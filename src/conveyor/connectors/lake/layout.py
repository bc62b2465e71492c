"""Names, folders and file contents of the raw lake, as the migration service's
S3 target writes them (``files`` writes and reads the files themselves).

Paths (``bucket_path`` rendered once when a load or a change applier starts)::

    <bucket_path>/<schema>/<table>/LOAD00000001.csv         full load (.csv.gz with GZIP, .parquet)
    <bucket_path>/<schema>/<table>/LOAD0000000A.csv         8-digit hexadecimal counter, as the service's
    <bucket_path>[/<CdcPath>]/<schema>/<table>[/<date>]/20261123-110442123.csv
                                                           change files: UTC YYYYMMDD-HHMMSSmmm of the write

CSV, as the service writes it by default:

* no header row; ``AddColumnName=true`` writes one (in every file, change files too);
* ``Op`` (I/U/D) is the first column of change rows, and of full-load rows only
  with ``IncludeOpForFullLoad=true``. With ``CdcInsertsOnly`` or
  ``CdcInsertsAndUpdates`` change rows have no ``Op`` column unless
  ``IncludeOpForFullLoad`` is true (the service's rule, applied to Parquet too);
* ``TimestampColumnName`` adds a text column after ``Op`` (before the table's
  columns) holding ``yyyy-MM-dd HH:mm:ss.SSSSSS`` (``.SSS`` with
  ``ParquetTimestampInMillisecond``): for a full load the time the batch was
  written (or the load's start with ``UseTaskStartTimeForFullLoadTimestamp``),
  for changes the source's commit time of the change's transaction (the time
  the file was written when the source reports none: SQLite, or a part of a
  transaction handed over before its commit was read);
* ``Rfc4180=true`` (the default) quotes a value with ``"`` only when it holds the
  delimiter, a quote, CR, LF or the row delimiter, doubling inner quotes;
* NULL is written as ``CsvNullValue`` (default: nothing). An empty string is
  written as ``""`` so it stays distinct from NULL (the service writes both as
  nothing unless CsvNullValue is set; readers that unquote see the same text).
  With ``Rfc4180=false`` nothing is quoted and an empty string is written empty;
* values: integers and decimals as digits, floats as their shortest round-trip
  text (``nan``, ``inf``), booleans ``true``/``false``, dates ``2024-01-31``,
  times ``12:00:00.000000``, timestamps ``2024-01-31 12:00:00.000000`` (UTC,
  no zone suffix, for timestamptz too), infinite dates/timestamps
  ``infinity``/``-infinity``, binary as lowercase hex, intervals as ISO 8601
  ``P<months>M<days>DT<seconds>S``, arrays as a JSON list of the element texts.

Parquet: the table's Arrow types (timestamps coerced to milliseconds with
``ParquetTimestampInMillisecond``), every column nullable, ``Op`` and the
timestamp column as strings; intervals are stored as the text above (Parquet
has no month-day-nano interval). ``CompressionType=GZIP`` gzips CSV files
(``.csv.gz``) and selects the gzip codec for Parquet columns; ``NONE`` leaves
Parquet uncompressed.

``MaxFileSize`` (KB) rolls LOAD files: a CSV file never grows past it unless a
single row is larger (measured before compression); a Parquet file rolls after
the row group that reaches it. Change files are one per table per applied
batch, and batches follow ``CdcMaxBatchInterval`` / ``CdcMinFileSize`` (see
``apply``).

Conveyor's own state lives under ``<root>/.conveyor/`` (hidden from crawlers
and from the curation's file listing): task checkpoints, and per table the
shape of its LOAD files (``tables/<bucket_path>/<schema>/<table>.json``), which
``describe`` and ``read`` use because headerless CSV files do not say it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import pyarrow as pa

from conveyor.connectors.lake.settings import (
    CompressionType,
    DatePartitionDelimiter,
    DatePartitionSequence,
    LakeSettings,
)
from conveyor.core.batch import RejectedValue
from conveyor.core.errors import TerminalError
from conveyor.core.schema import Column, TableRef, TableSchema
from conveyor.core.types import ColumnType, Kind

OP_COLUMN = "Op"
STATE_DIR = ".conveyor"
LOAD_RE = re.compile(r"^LOAD([0-9A-F]{8})\.(csv|csv\.gz|parquet)$")
CHANGE_RE = re.compile(r"^(\d{8}-\d{9})\.(csv|csv\.gz|parquet)$")

_PARTITION_PARTS: dict[DatePartitionSequence, tuple[str, ...]] = {
    DatePartitionSequence.YYYYMMDD: ("%Y", "%m", "%d"),
    DatePartitionSequence.YYYYMMDDHH: ("%Y", "%m", "%d", "%H"),
    DatePartitionSequence.YYYYMM: ("%Y", "%m"),
    DatePartitionSequence.MMYYYYDD: ("%m", "%Y", "%d"),
    DatePartitionSequence.DDMMYYYY: ("%d", "%m", "%Y"),
}
_PARTITION_SEPARATORS = {
    DatePartitionDelimiter.SLASH: "/",
    DatePartitionDelimiter.DASH: "-",
    DatePartitionDelimiter.UNDERSCORE: "_",
    DatePartitionDelimiter.NONE: "",
}


def join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


# --- names and folders -------------------------------------------------------


def extension(data_format: str, compression: CompressionType) -> str:
    if data_format == "parquet":
        return "parquet"
    return "csv.gz" if compression is CompressionType.GZIP else "csv"


def load_file_name(number: int, ext: str) -> str:
    return f"LOAD{number:08X}.{ext}"


def load_number(name: str) -> int | None:
    match = LOAD_RE.match(name)
    return int(match.group(1), 16) if match else None


MAX_NAME_BYTES = 200
"""The longest schema or table name the lake takes, in UTF-8 bytes: a file name
is at most 255 bytes on common file systems, and the lake names files after
tables (``.conveyor/tables/.../<table>.json``, written through a temporary
name a few dozen bytes longer)."""
NAME_RULE = (
    "a lake's schema and table names are folder names (raw and curated): a name holding '/', '\\', "
    f"'[', ']' or a control character, starting with '.', or longer than {MAX_NAME_BYTES} bytes, is "
    "refused; rename with a table-mapping transformation rule"
)


def refused_name(name: str) -> str | None:
    """Why ``name`` cannot be a schema or table folder of the lake, or None.
    Names are used as they are (DMS's layout); those that would leave their
    folder (``..``, ``a/b``), hide in it (``.x``, the lake's own ``.conveyor``)
    or cannot be a file or Delta table name (NUL, control characters;
    deltalake parses '[' and ']' as a URL's; past ``MAX_NAME_BYTES``) are refused."""
    if not name or name.startswith(".") or any(c in "/\\[]" or ord(c) < 0x20 or c == "\x7f" for c in name):
        return NAME_RULE
    if len(name.encode()) > MAX_NAME_BYTES:
        return NAME_RULE
    return None


def _names(ref: TableRef) -> tuple[str, str]:
    """The table's schema and name as folder names, refused as ``refused_name`` says
    (the plan refuses such tables first; this keeps any other path inside the lake)."""
    for name in (ref.schema, ref.name):
        if refused_name(name) is not None:
            raise TerminalError(f"table {ref}: name {name!r}: {NAME_RULE}")
    return ref.schema, ref.name


def table_folder(bucket_path: str, ref: TableRef) -> str:
    return join(bucket_path, *_names(ref))


def change_stamp(when: datetime) -> str:
    """``YYYYMMDD-HHMMSSmmm`` in UTC."""
    utc = when.astimezone(UTC)
    return utc.strftime("%Y%m%d-%H%M%S") + f"{utc.microsecond // 1000:03d}"


def stamp_time(stamp: str) -> datetime:
    return datetime.strptime(stamp[:15], "%Y%m%d-%H%M%S").replace(
        microsecond=int(stamp[15:18]) * 1000, tzinfo=UTC
    )


def date_partition(when: datetime, settings: LakeSettings) -> str:
    local = when.astimezone(settings.zone)
    parts = [local.strftime(code) for code in _PARTITION_PARTS[settings.date_partition_sequence]]
    return _PARTITION_SEPARATORS[settings.date_partition_delimiter].join(parts)


def change_folder(bucket_path: str, settings: LakeSettings, ref: TableRef, when: datetime) -> str:
    folder = join(bucket_path, settings.cdc_path or "", *_names(ref))
    if settings.date_partition_enabled:
        folder = join(folder, date_partition(when, settings))
    return folder


def exceptions_path(table_folder: str, stamp: str) -> str:
    """Where a batch's refused values go (the lake's awsdms_apply_exceptions):
    one JSON line each, a file per load or change batch, named by its stamp (a
    replayed batch rewrites its own file)."""
    return join(STATE_DIR, "exceptions", table_folder, f"{stamp}.jsonl")


def exception_lines(task: str, rejected: Sequence[RejectedValue], when: datetime) -> bytes:
    """``rejected`` as the exceptions file's JSON lines."""
    lines = []
    for r in rejected:
        entry = asdict(r)
        entry.update(table=str(r.table), task=task, error_time=when.isoformat())
        lines.append(json.dumps(entry, default=str) + "\n")
    return "".join(lines).encode()


def table_state_path(bucket_path: str, ref: TableRef) -> str:
    schema, name = _names(ref)
    return join(STATE_DIR, "tables", bucket_path, schema, f"{name}.json")


def checkpoint_path(task: str) -> str:
    return join(STATE_DIR, "checkpoints", f"{task}.json")


def pending_path(task: str) -> str:
    return join(STATE_DIR, "checkpoints", f"{task}.pending.json")


def unchanged_path(change_rel: str) -> str:
    """Where the unchanged columns of a change file's partial updates are
    recorded (``{"rows": [[row, [column, ...]], ...]}``): the file itself
    cannot tell a value the source did not send from NULL."""
    return join(STATE_DIR, "unchanged", f"{change_rel}.json")


def truncated_path(change_rel: str) -> str:
    """Where a TRUNCATE inside a change batch is recorded (``{"row": N}``: the
    table was emptied before row N of ``change_rel``). The change-file layout
    has no row form for it; the file named may hold no row at all (a TRUNCATE
    with no change after it in the batch), and then is not written."""
    return join(STATE_DIR, "truncated", f"{change_rel}.json")


def format_timestamp(when: datetime, millis: bool) -> str:
    text = when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return text[:-3] if millis else text


# --- what a file holds -------------------------------------------------------


@dataclass(frozen=True)
class FileLayout:
    """How the files of one kind (LOAD or change) are written."""

    data_format: Literal["csv", "parquet"]
    compression: str
    op: bool
    timestamp: str | None
    header: bool
    delimiter: str
    row_delimiter: str
    null_value: str
    rfc4180: bool
    millis: bool

    @property
    def ext(self) -> str:
        return extension(self.data_format, CompressionType(self.compression))

    def extra_columns(self) -> list[str]:
        return ([OP_COLUMN] if self.op else []) + ([self.timestamp] if self.timestamp else [])

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FileLayout:
        return cls(**data)


def file_layout(
    settings: LakeSettings, data_format: Literal["csv", "parquet"], *, changes: bool
) -> FileLayout:
    if changes:
        filtered = settings.cdc_inserts_only or settings.cdc_inserts_and_updates
        op = settings.include_op_for_full_load or not filtered
    else:
        op = settings.include_op_for_full_load
    return FileLayout(
        data_format=data_format,
        compression=settings.compression_type.value,
        op=op,
        timestamp=settings.timestamp_column_name,
        header=settings.add_column_name,
        delimiter=settings.csv_delimiter,
        row_delimiter=settings.csv_row_delimiter,
        null_value=settings.csv_null_value,
        rfc4180=settings.rfc4180,
        millis=settings.parquet_timestamp_in_millisecond,
    )


def frame(
    batch: pa.RecordBatch | pa.Table,
    layout: FileLayout,
    ops: pa.Array | pa.ChunkedArray | str | None,
    stamp: pa.Array | pa.ChunkedArray | str | None,
) -> pa.Table:
    """The file's columns: ``Op``, the timestamp column (one text for every
    row, or one per row), then the batch's."""
    arrays: list[pa.Array | pa.ChunkedArray] = []
    names: list[str] = []
    n = batch.num_rows
    if layout.op:
        arrays.append(pa.array([ops] * n, pa.string()) if isinstance(ops, str) or ops is None else ops)
        names.append(OP_COLUMN)
    if layout.timestamp:
        given = isinstance(stamp, pa.Array | pa.ChunkedArray)
        arrays.append(stamp if given else pa.array([stamp] * n, pa.string()))
        names.append(layout.timestamp)
    if layout.timestamp in batch.schema.names or (layout.op and OP_COLUMN in batch.schema.names):
        raise TerminalError(
            f"the table has a column named like the lake's extra column ({OP_COLUMN!r} or "
            f"{layout.timestamp!r}); rename it or change TimestampColumnName"
        )
    arrays.extend(batch.columns)
    names.extend(batch.schema.names)
    return pa.Table.from_arrays(arrays, names=names)


# --- the shape of a table's LOAD files -------------------------------------------------


def _type_to_json(ctype: ColumnType) -> dict[str, Any]:
    return {
        "kind": ctype.kind.value,
        "length": ctype.length,
        "precision": ctype.precision,
        "scale": ctype.scale,
        "element": None if ctype.element is None else _type_to_json(ctype.element),
        "labels": list(ctype.labels),
        "native": ctype.native,
    }


def _type_from_json(data: dict[str, Any]) -> ColumnType:
    return ColumnType(
        Kind(data["kind"]),
        length=data.get("length"),
        precision=data.get("precision"),
        scale=data.get("scale"),
        element=None if data.get("element") is None else _type_from_json(data["element"]),
        labels=tuple(data.get("labels") or ()),
        native=data.get("native"),
    )


def table_state(table: TableSchema, layout: FileLayout, files: list[str]) -> bytes:
    document = {
        "schema": table.ref.schema,
        "table": table.ref.name,
        "columns": [
            {"name": c.name, "type": _type_to_json(c.type), "nullable": c.nullable, "generated": c.generated}
            for c in table.columns
        ],
        "primary_key": list(table.primary_key),
        "native_engine": table.native_engine,
        "layout": layout.to_json(),
        "files": files,
        "written_at": datetime.now(UTC).isoformat(),
    }
    return json.dumps(document, indent=1).encode()


def parse_table_state(data: bytes) -> tuple[TableSchema, FileLayout, list[str]]:
    document = json.loads(data)
    columns = tuple(
        Column(c["name"], _type_from_json(c["type"]), nullable=c["nullable"], generated=c.get("generated"))
        for c in document["columns"]
    )
    schema = TableSchema(
        TableRef(document["schema"], document["table"]),
        columns,
        tuple(document["primary_key"]),
        native_engine=document.get("native_engine"),
    )
    return schema, FileLayout.from_json(document["layout"]), list(document["files"])
