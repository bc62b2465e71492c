"""The raw lake's files, written and read back: a table's columns as the CSV
text the migration service writes (``docs/lake.md``: quoting, NULL, intervals,
infinities, binary as hex), Parquet as it writes it, and reading either back into
the table's Arrow types. ``layout`` says where files go and what each holds."""

from __future__ import annotations

import gzip
import io
import json
import re
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from conveyor.connectors.lake import calendar_text as cal
from conveyor.connectors.lake.filesystem import LakeFS
from conveyor.connectors.lake.layout import FileLayout
from conveyor.connectors.lake.settings import (
    CompressionType,
)
from conveyor.core import types as t
from conveyor.core.errors import DataError, TerminalError
from conveyor.core.schema import TableSchema

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
