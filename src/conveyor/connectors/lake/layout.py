"""Names, folders and file contents of the raw lake, as the migration service's
S3 target writes them.

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

import gzip
import io
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from conveyor.connectors.lake import calendar_text as cal
from conveyor.connectors.lake.filesystem import LakeFS
from conveyor.connectors.lake.settings import (
    CompressionType,
    DatePartitionDelimiter,
    DatePartitionSequence,
    LakeSettings,
)
from conveyor.core import types as t
from conveyor.core.batch import RejectedValue
from conveyor.core.errors import DataError, TerminalError
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
    batch: pa.RecordBatch,
    layout: FileLayout,
    ops: pa.Array | str | None,
    stamp: pa.Array | str | None,
) -> pa.Table:
    """The file's columns: ``Op``, the timestamp column (one text for every
    row, or one per row), then the batch's."""
    arrays: list[pa.Array] = []
    names: list[str] = []
    n = batch.num_rows
    if layout.op:
        arrays.append(pa.array([ops] * n, pa.string()) if isinstance(ops, str) or ops is None else ops)
        names.append(OP_COLUMN)
    if layout.timestamp:
        arrays.append(stamp if isinstance(stamp, pa.Array) else pa.array([stamp] * n, pa.string()))
        names.append(layout.timestamp)
    if layout.timestamp in batch.schema.names or (layout.op and OP_COLUMN in batch.schema.names):
        raise TerminalError(
            f"the table has a column named like the lake's extra column ({OP_COLUMN!r} or "
            f"{layout.timestamp!r}); rename it or change TimestampColumnName"
        )
    arrays.extend(batch.columns)
    names.extend(batch.schema.names)
    return pa.Table.from_arrays(arrays, names=names)


# --- CSV text ------------------------------------------------------------------


def _hex(values: pa.Array) -> pa.Array:
    return pa.array([None if v is None else v.hex() for v in values.to_pylist()], pa.string())


def _interval_text(value: Any) -> str | None:
    if value is None:
        return None
    seconds = Decimal(value.nanoseconds) / Decimal(1_000_000_000)
    return f"P{value.months}M{value.days}DT{seconds.normalize():f}S"


_INTERVAL_RE = re.compile(r"^P(-?\d+)M(-?\d+)DT(-?[\d.]+)S$")


def _interval_value(text: str | None) -> Any:
    if text is None:
        return None
    match = _INTERVAL_RE.match(text)
    if not match:
        raise DataError(f"not an interval: {text[:40]!r}")
    nanos = int(Decimal(match.group(3)) * 1_000_000_000)
    return pa.MonthDayNano([int(match.group(1)), int(match.group(2)), nanos])


def _with_infinity(values: pa.Array, texts: pa.Array, raw: pa.DataType, top: int) -> pa.Array:
    ints = values.view(raw)
    out = pc.if_else(pc.equal(ints, top), pa.scalar("infinity"), texts)
    return pc.if_else(pc.equal(ints, -top), pa.scalar("-infinity"), out)


def text_column(values: pa.Array) -> pa.Array:
    """A column's values as the CSV texts above (nulls stay null)."""
    dtype = values.type
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return values.cast(pa.string())
    if pa.types.is_timestamp(dtype):
        raw = pa.int64()
        ints = values.view(raw)
        infinite = pc.or_(pc.equal(ints, t.INT64_INFINITY), pc.equal(ints, t.INT64_NEG_INFINITY))
        finite = pc.if_else(infinite, pa.scalar(None, raw), ints).view(pa.timestamp(dtype.unit))
        texts = finite.cast(pa.string())
        if dtype.unit == "us":
            texts = cal.fill_texts(ints, texts, unit_is_days=False)
        return _with_infinity(values, texts, raw, t.INT64_INFINITY)
    if pa.types.is_date32(dtype):
        raw = pa.int32()
        ints = values.view(raw)
        infinite = pc.or_(pc.equal(ints, t.DATE_INFINITY), pc.equal(ints, t.DATE_NEG_INFINITY))
        finite = pc.if_else(infinite, pa.scalar(None, raw), ints).view(pa.date32())
        texts = cal.fill_texts(ints, finite.cast(pa.string()), unit_is_days=True)
        return _with_infinity(values, texts, raw, t.DATE_INFINITY)
    if pa.types.is_time64(dtype) and dtype.unit == "us":
        return cal.time_texts(values)
    if pa.types.is_binary(dtype) or pa.types.is_large_binary(dtype):
        return _hex(values)
    if dtype == pa.month_day_nano_interval():
        return pa.array([_interval_text(v) for v in values.to_pylist()], pa.string())
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        flat = text_column(values.flatten()).to_pylist()
        offsets = values.offsets.to_pylist()
        valid = values.is_valid().to_pylist()
        texts = [
            json.dumps(flat[offsets[i] : offsets[i + 1]], ensure_ascii=False) if valid[i] else None
            for i in range(len(values))
        ]
        return pa.array(texts, pa.string())
    return values.cast(pa.string())


def parse_column(texts: pa.Array, dtype: pa.DataType) -> pa.Array:
    """The inverse of ``text_column`` for a column of ``dtype``."""
    texts = texts.cast(pa.string())
    if pa.types.is_string(dtype):
        return texts
    if pa.types.is_timestamp(dtype) or pa.types.is_date32(dtype):
        raw = pa.int64() if pa.types.is_timestamp(dtype) else pa.int32()
        top = t.INT64_INFINITY if raw == pa.int64() else t.DATE_INFINITY
        plain = pa.timestamp(dtype.unit) if pa.types.is_timestamp(dtype) else pa.date32()
        pos = pc.equal(texts, "infinity")
        neg = pc.equal(texts, "-infinity")
        finite_texts = pc.if_else(pc.or_(pos, neg), pa.scalar(None, pa.string()), texts)
        try:
            finite = finite_texts.cast(plain).view(raw)
        except pa.ArrowInvalid:  # years Arrow does not read (BC, after 9999)
            if plain == pa.timestamp("ms"):
                raise
            finite = cal.parse_exact(finite_texts, raw, unit_is_days=raw == pa.int32())
        merged = pc.if_else(pos, pa.scalar(top, raw), pc.if_else(neg, pa.scalar(-top, raw), finite))
        return merged.view(plain).cast(dtype) if plain != dtype else merged.view(dtype)
    if pa.types.is_time64(dtype):
        end = pc.equal(texts, cal.DAY_END)
        day = pc.if_else(end, pa.scalar(None, pa.string()), texts)
        prefixed = pc.binary_join_element_wise(pa.scalar("1970-01-01"), day, " ")
        parsed = prefixed.cast(pa.timestamp(dtype.unit)).cast(dtype)
        if not pc.any(end).as_py():
            return parsed
        return pc.if_else(end, pa.scalar(86_400_000_000, pa.int64()), parsed.view(pa.int64())).view(dtype)
    if pa.types.is_binary(dtype):
        return pa.array([None if v is None else bytes.fromhex(v) for v in texts.to_pylist()], dtype)
    if dtype == pa.month_day_nano_interval():
        return pa.array([_interval_value(v) for v in texts.to_pylist()], dtype)
    if pa.types.is_list(dtype):
        lists = [None if v is None else json.loads(v) for v in texts.to_pylist()]
        flat = [item for lst in lists if lst is not None for item in lst]
        elements = parse_column(pa.array(flat, pa.string()), dtype.value_type)
        offsets = [0]
        for lst in lists:
            offsets.append(offsets[-1] + (len(lst) if lst is not None else 0))
        mask = pa.array([lst is None for lst in lists])
        return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), elements, type=dtype, mask=mask)
    return texts.cast(dtype)


def _needs_quotes(texts: pa.Array, layout: FileLayout) -> pa.Array:
    specials = {layout.delimiter, '"', "\n", "\r", layout.row_delimiter}
    needs = pc.equal(pc.binary_length(texts), 0)
    for special in specials:
        needs = pc.or_(needs, pc.match_substring(texts, special))
    return needs


def quote(texts: pa.Array, layout: FileLayout) -> pa.Array:
    if not layout.rfc4180:
        return texts
    quoted = pc.binary_join_element_wise(
        pa.scalar('"'), pc.replace_substring(texts, '"', '""'), pa.scalar('"'), ""
    )
    return pc.if_else(_needs_quotes(texts, layout), quoted, texts)


def header_bytes(names: list[str], layout: FileLayout) -> bytes:
    texts = quote(pa.array(names, pa.string()), layout).to_pylist()
    return (layout.delimiter.join(texts) + layout.row_delimiter).encode()


def csv_rows(data: pa.Table, layout: FileLayout) -> tuple[memoryview, np.ndarray[Any, Any]]:
    """Every row as its CSV line with the row delimiter: one buffer and the
    byte offset of each row's start (``len(rows) + 1`` entries)."""
    columns = []
    for column in data.columns:
        texts = quote(text_column(column.combine_chunks()), layout)
        columns.append(pc.fill_null(texts, pa.scalar(layout.null_value)))
    lines = pc.binary_join_element_wise(*columns, layout.delimiter)
    # line + row delimiter + "": each line ends with the row delimiter
    lines = pc.binary_join_element_wise(lines, pa.scalar(""), layout.row_delimiter).cast(pa.large_string())
    n = len(lines)
    buffers = lines.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int64)[lines.offset : lines.offset + n + 1]
    data_buffer = buffers[2]
    view = memoryview(data_buffer) if data_buffer is not None else memoryview(b"")
    return view, offsets


class CsvFileWriter:
    """One CSV file being written (gzipped with GZIP); ``size`` counts the
    bytes before compression."""

    def __init__(self, path: str, layout: FileLayout, header: bytes | None) -> None:
        self._raw = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._out: io.BufferedWriter | gzip.GzipFile = (
            gzip.GzipFile(fileobj=self._raw, mode="wb", mtime=0)
            if layout.compression == CompressionType.GZIP.value
            else self._raw
        )
        self.size = 0
        self.rows = 0
        if header is not None:
            self._out.write(header)
            self.size += len(header)

    def write(self, data: memoryview, rows: int) -> None:
        self._out.write(data)
        self.size += len(data)
        self.rows += rows

    def close(self) -> None:
        if self._out is not self._raw:
            self._out.close()
        self._raw.flush()
        self._raw.close()


def text_intervals_type(dtype: pa.DataType) -> pa.DataType:
    """``dtype`` with intervals (Parquet and Delta have none), at any list depth, as strings."""
    if dtype == pa.month_day_nano_interval():
        return pa.string()
    if pa.types.is_list(dtype):
        return pa.list_(text_intervals_type(dtype.value_type))
    return dtype


def intervals_as_text(values: pa.Array) -> pa.Array:
    """``values`` with every interval, at any list depth, as its ISO 8601 text."""
    if values.type == pa.month_day_nano_interval():
        return text_column(values)
    if pa.types.is_list(values.type) and text_intervals_type(values.type) != values.type:
        inner = intervals_as_text(values.values)
        return pa.ListArray.from_arrays(values.offsets, inner, mask=values.is_null())
    return values


def _intervals_from_text(values: pa.Array, dtype: pa.DataType) -> pa.Array:
    """The inverse of ``intervals_as_text`` for lists read from Parquet."""
    if not pa.types.is_list(dtype):
        return parse_column(values, dtype)
    inner = _intervals_from_text(values.values, dtype.value_type)
    return pa.ListArray.from_arrays(values.offsets, inner, type=dtype, mask=values.is_null())


def parquet_schema(data: pa.Table) -> pa.Schema:
    fields = []
    for field in data.schema:
        fields.append(pa.field(field.name, text_intervals_type(field.type), nullable=True))
    return pa.schema(fields)


def parquet_ready(data: pa.Table, schema: pa.Schema) -> pa.Table:
    arrays = []
    for column in data.columns:
        if text_intervals_type(column.type) != column.type:
            arrays.append(intervals_as_text(column.combine_chunks()))
        else:
            arrays.append(column)
    return pa.Table.from_arrays(arrays, schema=schema)


class ParquetFileWriter:
    def __init__(self, path: str, layout: FileLayout, schema: pa.Schema) -> None:
        self._sink = pa.OSFile(path, "wb")
        self.schema = schema
        self._writer = pq.ParquetWriter(
            self._sink,
            schema,
            compression="gzip" if layout.compression == CompressionType.GZIP.value else "none",
            coerce_timestamps="ms" if layout.millis else None,
            allow_truncated_timestamps=layout.millis,
        )
        self.rows = 0

    @property
    def size(self) -> int:
        return int(self._sink.tell())

    def write(self, data: pa.Table) -> None:
        self._writer.write_table(parquet_ready(data, self.schema))
        self.rows += data.num_rows

    def close(self) -> None:
        self._writer.close()
        self._sink.close()


def write_whole_file(path: str, data: pa.Table, layout: FileLayout) -> None:
    """Write ``data`` as one complete file (change files)."""
    if layout.data_format == "parquet":
        writer = ParquetFileWriter(path, layout, parquet_schema(data))
        writer.write(data)
        writer.close()
        return
    header = header_bytes(data.schema.names, layout) if layout.header else None
    csv = CsvFileWriter(path, layout, header)
    buffer, offsets = csv_rows(data, layout)
    csv.write(buffer[int(offsets[0]) : int(offsets[-1])], data.num_rows)
    csv.close()


# --- reading back ------------------------------------------------------------------


def read_file(fs: LakeFS, rel: str, table: TableSchema, layout: FileLayout) -> pa.Table:
    """A LOAD or change file as the table's Arrow schema (extra columns dropped;
    columns missing from an older file are null)."""
    target = table.arrow_schema()
    if layout.data_format == "parquet":
        with fs.open_input(rel) as handle:
            raw = pq.read_table(handle)
        # Chunked as read: combining would copy every column (a quarter of a
        # curation run's time for a 1M-row load); only parsing needs one array.
        columns = {name: raw.column(name) for name in raw.schema.names}
    else:
        columns = _read_csv(fs, rel, table, layout)
    arrays = []
    n = len(next(iter(columns.values()))) if columns else 0
    for field in target:
        values = columns.get(field.name)
        if values is None:
            arrays.append(pa.nulls(n, field.type))
        elif values.type == field.type:
            arrays.append(values)
        elif pa.types.is_string(values.type) and not pa.types.is_string(field.type):
            whole = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
            arrays.append(parse_column(whole, field.type))
        elif pa.types.is_list(values.type) and values.type == text_intervals_type(field.type):
            whole = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
            arrays.append(_intervals_from_text(whole, field.type))
        else:
            arrays.append(values.cast(field.type))
    return pa.Table.from_arrays(arrays, schema=target)


def _read_csv(fs: LakeFS, rel: str, table: TableSchema, layout: FileLayout) -> dict[str, pa.Array]:
    data = fs.read_bytes(rel)
    if data is None:
        raise TerminalError(f"{fs.location(rel)} disappeared while being read")
    if rel.endswith(".gz"):
        data = gzip.decompress(data)
    if len(layout.delimiter) != 1:
        raise TerminalError("reading back CSV files needs a one-character CsvDelimiter")
    if layout.row_delimiter not in ("\n", "\r\n"):
        if b"\n" in data:
            raise TerminalError("cannot read back CSV files whose values hold LF with this CsvRowDelimiter")
        data = data.replace(layout.row_delimiter.encode(), b"\n")
    names = [*layout.extra_columns(), *table.column_names]
    if not data:
        return {name: pa.array([], pa.string()) for name in names}
    read = pacsv.ReadOptions(column_names=names, skip_rows=1 if layout.header else 0, block_size=1 << 24)
    parse = pacsv.ParseOptions(
        delimiter=layout.delimiter, quote_char='"' if layout.rfc4180 else False, newlines_in_values=True
    )
    convert = pacsv.ConvertOptions(
        column_types=dict.fromkeys(names, pa.string()),
        null_values=[layout.null_value],
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
    )
    parsed = pacsv.read_csv(io.BytesIO(data), read_options=read, parse_options=parse, convert_options=convert)
    return {name: parsed.column(name).combine_chunks() for name in names}


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
