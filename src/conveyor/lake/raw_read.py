"""Reading a table's raw files: change files (with their operation and row
position) and full loads, into Arrow."""

from __future__ import annotations

import gzip
import io
import re
from collections.abc import Sequence
from dataclasses import replace

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from deltalake import DeltaTable

from conveyor.connectors.lake import files as lake_files
from conveyor.connectors.lake import layout as lay
from conveyor.core import types as t
from conveyor.core.errors import TerminalError
from conveyor.core.schema import Column, TableSchema
from conveyor.core.types import Kind
from conveyor.lake import unchanged
from conveyor.lake.change_rows import OP, SEQ
from conveyor.lake.controller import Lake
from conveyor.lake.raw_index import ChangeFile, FullLoad
from conveyor.lake.unchanged import UNCHANGED


def file_layout(base: lay.FileLayout, rel: str) -> lay.FileLayout:
    if rel.endswith(".parquet"):
        return replace(base, data_format="parquet")
    return replace(base, data_format="csv", compression="GZIP" if rel.endswith(".gz") else "NONE")


def read_changes(
    lake: Lake,
    files: Sequence[ChangeFile],
    schema: TableSchema | None,
    skipped: list[dict[str, str]],
    marked: set[str] | None = None,
) -> pa.Table:
    """The change rows of ``files`` in file and row order: ``__op``, the
    table's columns, ``__unchanged`` (see ``unchanged``; files with partial
    updates are in ``marked``, all are looked for without it) and ``__seq``
    (the row's position). Without a recorded
    table shape (a CDC-only table) Parquet files and CSV files with a header
    row describe themselves. Unreadable files are skipped into ``skipped``."""
    base = lay.file_layout(lake.config.settings, lake.config.data_format, changes=True)
    parts: list[pa.Table] = []
    for change in files:
        if not change.written:  # only a TRUNCATE was recorded under its name
            continue
        layout = file_layout(base, change.rel)
        try:
            if schema is not None:
                data = read_with_op(lake, change.rel, schema, layout)
            else:
                data = _read_self_described(lake, change.rel, layout)
        except Exception as exc:
            skipped.append(
                {"file": lake.raw.location(change.rel), "reason": f"unreadable: {short_error(exc)}"}
            )
            continue
        if marked is None or change.rel in marked:
            data = data.append_column(UNCHANGED, unchanged.marks(lake, change.rel, data.num_rows))
        else:
            data = data.append_column(UNCHANGED, pa.nulls(data.num_rows, pa.string()))
        parts.append(data)
    if parts:
        data = pa.concat_tables(parts, promote_options="permissive" if schema is None else "none")
    elif schema is not None:
        data = pa.schema([pa.field(OP, pa.string()), *schema.arrow_schema()]).empty_table()
    else:
        data = pa.schema([pa.field(OP, pa.string())]).empty_table()
    return data.append_column(SEQ, pa.array(range(data.num_rows), pa.int64()))


def current_rows(
    lake: Lake,
    dt: DeltaTable | None,
    load: FullLoad | None,
    key: Sequence[str],
    skipped: list[dict[str, str]],
) -> unchanged.Lookup:
    """The current rows of given keys: from the full load being taken, else
    the curated table (for partial updates' unchanged columns)."""

    def lookup(keys: pa.Table) -> pa.Table:
        if load is not None:
            rows = read_full_load(lake, load, skipped)
        elif dt is not None:
            first = keys.column(key[0])
            rows = dt.to_pyarrow_dataset().to_table(filter=pc.field(key[0]).isin(first.to_pylist()))
        else:
            return keys.slice(0, 0)
        cast_keys = keys.cast(rows.select(list(key)).schema, safe=False)
        return rows.join(cast_keys, keys=list(key), join_type="left semi", use_threads=False)

    return lookup


def _read_self_described(lake: Lake, rel: str, layout: lay.FileLayout) -> pa.Table:
    """A change file read by its own column names (Parquet, or CSV with a
    header row; CSV values are typed by inference)."""
    if layout.data_format == "parquet":
        with lake.raw.open_input(rel) as handle:
            raw = pq.read_table(handle)
    elif layout.header:
        data = lake.raw.read_bytes(rel)
        if data is None:
            raise TerminalError("disappeared while being read")
        if rel.endswith(".gz"):
            data = gzip.decompress(data)
        raw = pacsv.read_csv(
            io.BytesIO(data),
            parse_options=pacsv.ParseOptions(
                delimiter=layout.delimiter,
                quote_char='"' if layout.rfc4180 else False,
                newlines_in_values=True,
            ),
            convert_options=pacsv.ConvertOptions(
                null_values=[layout.null_value], strings_can_be_null=True, quoted_strings_can_be_null=False
            ),
        )
    else:
        raise TerminalError("a headerless CSV change file, and no full load recorded the table's columns")
    if layout.op:
        if lay.OP_COLUMN not in raw.column_names:
            raise TerminalError("no Op column")
        ops = raw.column(lay.OP_COLUMN).combine_chunks().cast(pa.string())
    else:
        ops = pa.array(["I"] * raw.num_rows, pa.string())
    _check_ops(ops)
    extra = {lay.OP_COLUMN, layout.timestamp}
    return raw.select([n for n in raw.column_names if n not in extra]).add_column(0, OP, ops)


def _check_ops(ops: pa.Array) -> None:
    bad = pc.sum(pc.invert(pc.fill_null(pc.is_in(ops, pa.array(["I", "U", "D"])), False))).as_py()
    if bad:
        raise TerminalError(f"{bad} row(s) with an Op other than I, U or D")


def read_with_op(lake: Lake, rel: str, schema: TableSchema, layout: lay.FileLayout) -> pa.Table:
    """A change file with its ``Op`` column (all ``I`` when the files have none):
    the extra columns are read as text columns in front of the table's."""
    text = t.simple(Kind.TEXT)
    extra = [Column(lay.OP_COLUMN, text)] if layout.op else []
    if layout.timestamp:
        extra.append(Column(layout.timestamp, text))
    # Change capture carries generated columns (looked up from the source); a
    # headerless CSV change file of an older Conveyor left them out (NULL here).
    captured = schema
    try:
        data = _read_change_file(lake, rel, schema, layout, extra)
    except pa.ArrowInvalid:
        captured = schema.without_generated()
        if captured.columns == schema.columns or layout.data_format == "parquet":
            raise
        data = _read_change_file(lake, rel, captured, layout, extra)
    if layout.op:
        ops = data.column(lay.OP_COLUMN).combine_chunks()
    else:
        ops = pa.array(["I"] * data.num_rows, pa.string())
    _check_ops(ops)
    columns = [
        data.column(c.name) if c.name in captured.column_names else pa.nulls(data.num_rows, c.type.arrow())
        for c in schema.columns
    ]
    return pa.Table.from_arrays(columns, schema=schema.arrow_schema()).add_column(0, OP, ops)


def _read_change_file(
    lake: Lake, rel: str, schema: TableSchema, layout: lay.FileLayout, extra: list[Column]
) -> pa.Table:
    wide = TableSchema(schema.ref, (*extra, *schema.columns), schema.primary_key)
    return lake_files.read_file(lake.raw, rel, wide, replace(layout, op=False, timestamp=None))


def read_full_load(lake: Lake, load: FullLoad, skipped: list[dict[str, str]]) -> pa.Table:
    parts = []
    for rel in load.files:
        try:
            parts.append(lake_files.read_file(lake.raw, rel, load.schema, load.layout))
        except Exception as exc:
            skipped.append({"file": lake.raw.location(rel), "reason": f"unreadable: {short_error(exc)}"})
    if not parts:
        return load.schema.arrow_schema().empty_table()
    return pa.concat_tables(parts)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def short_error(exc: BaseException) -> str:
    """The first line of ``exc``, with the causes deltalake's storage errors
    list below it (``Generic S3 error`` / ``↳ Error performing GET ... in 60s,
    after 2 retries``) joined on."""
    lines = [line.strip() for line in _ANSI.sub("", str(exc)).strip().splitlines()]
    if not lines:
        return type(exc).__name__
    text = lines[0]
    for line in lines[1:]:
        if not line.startswith("↳"):
            break
        text += ": " + line.removeprefix("↳").strip()
    return text[:600]
