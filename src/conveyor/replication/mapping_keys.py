"""The keys, actions and values the migration service defines for each place
of a table-mapping document: what :mod:`conveyor.replication.mapping_rules`
checks rules against."""

from __future__ import annotations

from conveyor.core.row_filter import FilterOp

COMMON = ("rule-type", "rule-id", "rule-name", "rule-action", "object-locator")
RULE_KEYS: dict[str, frozenset[str]] = {
    "selection": frozenset({*COMMON, "filters", "load-order"}),
    "transformation": frozenset(
        {
            *COMMON,
            "rule-target",
            "value",
            "old-value",
            "expression",
            "data-type",
            "before-image-def",
            "primary-key-def",
        }
    ),
    "table-settings": frozenset(
        {"rule-type", "rule-id", "rule-name", "object-locator", "parallel-load", "lob-settings", "load-order"}
    ),
}
LOCATOR_KEYS = {
    "selection": frozenset({"schema-name", "table-name", "table-type"}),
    "transformation": frozenset(
        {
            "schema-name",
            "table-name",
            "column-name",
            "data-type",
            "table-tablespace-name",
            "index-tablespace-name",
        }
    ),
    "table-settings": frozenset({"schema-name", "table-name"}),
}
FILTER_KEYS = frozenset({"filter-type", "column-name", "filter-conditions"})
CONDITION_KEYS = frozenset({"filter-operator", "value", "start-value", "end-value"})
PARALLEL_KEYS = frozenset(
    {
        "type",
        "partitions",
        "subpartitions",
        "columns",
        "boundaries",
        "number-of-partitions",
        "collection-count-from-metadata",
        "max-records-skip-per-page",
        "batch-size",
    }
)
LOB_KEYS = frozenset({"mode", "bulk-max-size"})
BEFORE_IMAGE_KEYS = frozenset({"column-prefix", "column-suffix", "column-filter"})
BEFORE_IMAGE_FILTERS = ("pk-only", "non-lob", "all")
PRIMARY_KEY_KEYS = frozenset({"name", "origin", "columns"})
DATA_TYPE_KEYS = frozenset({"type", "length", "precision", "scale"})

SELECTION_ACTIONS = ("include", "exclude", "explicit")
NAME_ACTIONS = (
    "rename",
    "convert-lowercase",
    "convert-uppercase",
    "add-prefix",
    "remove-prefix",
    "replace-prefix",
    "add-suffix",
    "remove-suffix",
    "replace-suffix",
)
COLUMN_ACTIONS = (
    "remove-column",
    "include-column",
    "add-column",
    "change-data-type",
    "data-masking-digits-mask",
    "data-masking-digits-randomize",
    "data-masking-hash-mask",
    "add-before-image-columns",
)
TABLE_ACTIONS = ("define-primary-key",)
MASKING_ACTIONS = frozenset(a for a in COLUMN_ACTIONS if a.startswith("data-masking-"))
NEEDS_VALUE = frozenset(
    {
        "rename",
        "add-prefix",
        "remove-prefix",
        "replace-prefix",
        "add-suffix",
        "remove-suffix",
        "replace-suffix",
    }
)
OPERATORS = {
    "eq": FilterOp.EQ,
    "noteq": FilterOp.NOTEQ,
    "ste": FilterOp.LTE,
    "lte": FilterOp.LTE,
    "gte": FilterOp.GTE,
    "between": FilterOp.BETWEEN,
    "notbetween": FilterOp.NOTBETWEEN,
    "null": FilterOp.NULL,
    "notnull": FilterOp.NOTNULL,
}
PARALLEL_LOAD_TYPES = ("partitions-auto", "subpartitions-auto", "ranges", "partitions-list", "none")
LOB_MODES = ("unlimited", "limited", "none")
