"""Which columns Delta file statistics are kept for.

deltalake computes a date column's min/max through chrono, whose dates end
at year 262143: a date PostgreSQL allows (up to 5874897 AD, and ``infinity``,
carried as int32 max) makes the writer panic (``NaiveDate + TimeDelta
overflowed``). So a curated table with date columns keeps statistics only for
its other columns (``delta.dataSkippingStatsColumns``). Partition pruning does
not use statistics; a merge on a date key scans more files, nothing more.
"""

from __future__ import annotations

import pyarrow as pa
from deltalake import DeltaTable

STATS_COLUMNS = "delta.dataSkippingStatsColumns"
INDEXED_COLUMNS = "delta.dataSkippingNumIndexedCols"


def _has_dates(dtype: pa.DataType) -> bool:
    if pa.types.is_date(dtype):
        return True
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        return _has_dates(dtype.value_type)
    if pa.types.is_struct(dtype):
        return any(_has_dates(dtype.field(i).type) for i in range(dtype.num_fields))
    return False


def configuration(schema: pa.Schema) -> dict[str, str] | None:
    """The table properties that keep statistics off date columns (None when
    the table has none)."""
    if not any(_has_dates(f.type) for f in schema):
        return None
    kept = ["`" + f.name.replace("`", "``") + "`" for f in schema if not _has_dates(f.type)]
    if not kept:
        return {INDEXED_COLUMNS: "0"}
    return {STATS_COLUMNS: ",".join(kept)}


def ensure(dt: DeltaTable, incoming: pa.Schema, skip: tuple[str, ...] = (), replace: bool = False) -> None:
    """Set ``configuration`` on an existing table before rows of ``incoming``
    (its columns but ``skip``) are written to it, when it is not set yet.
    With ``replace`` the table's schema becomes ``incoming`` (an overwrite,
    which does not apply a ``configuration`` to an existing table)."""
    fields = [] if replace else list(pa.schema(dt.schema().to_arrow()))
    names = {f.name for f in fields}
    fields += [f for f in incoming if f.name not in names and f.name not in skip]
    wanted = configuration(pa.schema(fields))
    if wanted is None:
        return
    current = dt.metadata().configuration
    if all(current.get(k) == v for k, v in wanted.items()):
        return
    dt.alter.set_table_properties(wanted)
