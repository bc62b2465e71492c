"""Texts of dates, timestamps and times beyond what Arrow's casts format and
parse: Arrow writes ``<value out of range: N>`` for a date after 9999 and
reads no year outside 0000..9999, and time64 has no text for ``24:00:00``
(which PostgreSQL and DuckDB allow). These fill in, value by value, only
where Arrow's vectorised cast cannot, so a lake file says every value exactly
and curation reads it back to the same value."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from conveyor.core.calendar import US_PER_DAY, iso_date, iso_timestamp, parse_iso

_OUT_OF_RANGE = "<value out of range"
DAY_END = "24:00:00.000000"


def fill_texts(ints: pa.Array, texts: pa.Array, unit_is_days: bool) -> pa.Array:
    """``texts`` (Arrow's cast of the values ``ints``) with Arrow's
    out-of-range placeholders replaced by the exact ISO text."""
    bad = pc.starts_with(texts, _OUT_OF_RANGE)
    if not pc.any(bad).as_py():
        return texts
    values = ints.to_pylist()
    out = texts.to_pylist()
    for i in pc.indices_nonzero(pc.fill_null(bad, False)).to_pylist():
        out[i] = iso_date(values[i]) if unit_is_days else iso_timestamp(values[i])
    return pa.array(out, pa.string())


def time_texts(values: pa.Array) -> pa.Array:
    """time64[us] values as ``HH:MM:SS.ffffff``; 24:00:00 included."""
    texts = values.cast(pa.string())
    end = pc.equal(values.view(pa.int64()), US_PER_DAY)
    if not pc.any(end).as_py():
        return texts
    return pc.if_else(end, pa.scalar(DAY_END), texts)


def parse_exact(texts: pa.Array, raw: pa.DataType, unit_is_days: bool) -> pa.Array:
    """ISO texts (any year) as raw integers: days or microseconds since 1970.
    Raises ValueError for a text that is neither."""
    out: list[int | None] = []
    for text in texts.to_pylist():
        if text is None:
            out.append(None)
            continue
        days, micros = parse_iso(text)
        out.append(days if unit_is_days else days * US_PER_DAY + micros)
    return pa.array(out, raw)
