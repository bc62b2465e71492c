"""Every table-mapping rule type and action, one row each: the JSON as a user
writes it, and either the target it gives (name, columns, key, the rows and
values a sample batch becomes) or the refusal it gets."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from conveyor.connectors.changes import RowChange
from conveyor.core.batch import Op
from conveyor.core.errors import ConfigError, DataError
from conveyor.core.schema import Column, TableRef, TableSchema
from conveyor.core.types import Kind, decimal, simple, varchar
from conveyor.replication.mappings import TableMappings

ORIGIN = "mappings.json"
PEOPLE = TableSchema(
    TableRef("app", "src_people"),
    (
        Column("id", simple(Kind.INT64), nullable=False),
        Column("name", simple(Kind.TEXT)),
        Column("phone", varchar(20)),
        Column("region", simple(Kind.TEXT)),
        Column("amount", decimal(10, 2)),
    ),
    ("id",),
)
BATCH = pa.RecordBatch.from_pydict(
    {
        "id": pa.array([1, 2, 3, 4], pa.int64()),
        "name": pa.array(["Ann", "bob", "Cy", None]),
        "phone": pa.array(["+1 555-0101", "555 0102", None, "n/a"]),
        "region": pa.array(["EU", "eu", None, "US"]),
        "amount": pa.array([Decimal("5.00"), Decimal("10.00"), Decimal("99.99"), Decimal("100.01")]),
    },
    schema=PEOPLE.arrow_schema(),
)
ALL_COLUMNS = ["id", "name", "phone", "region", "amount"]


def selection(action: str = "include", **extra: Any) -> dict[str, Any]:
    return {
        "rule-type": "selection",
        "rule-id": "1",
        "rule-name": "people",
        "object-locator": {"schema-name": "app", "table-name": "src_people"},
        "rule-action": action,
    } | extra


def filtered(*filters: tuple[str, list[dict[str, str]]]) -> list[dict[str, Any]]:
    return [
        selection(
            filters=[
                {"filter-type": "source", "column-name": column, "filter-conditions": conditions}
                for column, conditions in filters
            ]
        )
    ]


def transformation(target: str, action: str, column: str = "%", **extra: Any) -> dict[str, Any]:
    locator = {"schema-name": "app", "table-name": "src_people"}
    if target == "schema":
        del locator["table-name"]
    if target == "column":
        locator["column-name"] = column
    return {
        "rule-type": "transformation",
        "rule-id": "2",
        "rule-name": "t",
        "rule-target": target,
        "object-locator": locator,
        "rule-action": action,
    } | extra


def table_settings(**extra: Any) -> dict[str, Any]:
    return {
        "rule-type": "table-settings",
        "rule-id": "3",
        "rule-name": "settings",
        "object-locator": {"schema-name": "app", "table-name": "src_people"},
    } | extra


@dataclass
class Target:
    ref: str = "app.src_people"
    columns: tuple[str, ...] = tuple(ALL_COLUMNS)
    key: tuple[str, ...] = ("id",)
    ids: tuple[int, ...] = (1, 2, 3, 4)  # rows the filters keep
    values: dict[str, list[Any]] | None = None  # target columns after projection


def digits(mask: str) -> list[Any]:
    return [None if v is None else re.sub("[0-9]", mask, v) for v in BATCH.column(2).to_pylist()]


def sha(values: list[Any]) -> list[Any]:
    return [None if v is None else hashlib.sha256(v.encode()).hexdigest().upper() for v in values]


T = transformation
CASES: list[tuple[str, list[dict[str, Any]], Target | str]] = [
    # selection
    ("include", [selection()], Target()),
    ("explicit", [selection("explicit")], Target()),
    ("exclude", [selection(), {**selection("exclude"), "rule-id": "9"}], "match none of the 1 source tables"),
    ("filter eq", filtered(("region", [{"filter-operator": "eq", "value": "EU"}])), Target(ids=(1,))),
    (
        "filter noteq (NULL never passes)",
        filtered(("region", [{"filter-operator": "noteq", "value": "EU"}])),
        Target(ids=(2, 4)),
    ),
    ("filter ste", filtered(("amount", [{"filter-operator": "ste", "value": "10"}])), Target(ids=(1, 2))),
    ("filter lte", filtered(("amount", [{"filter-operator": "lte", "value": "10"}])), Target(ids=(1, 2))),
    ("filter gte", filtered(("amount", [{"filter-operator": "gte", "value": "10"}])), Target(ids=(2, 3, 4))),
    (
        "filter between (inclusive)",
        filtered(("amount", [{"filter-operator": "between", "start-value": "10", "end-value": "99.99"}])),
        Target(ids=(2, 3)),
    ),
    (
        "filter notbetween",
        filtered(("amount", [{"filter-operator": "notbetween", "start-value": "10", "end-value": "99.99"}])),
        Target(ids=(1, 4)),
    ),
    ("filter null", filtered(("region", [{"filter-operator": "null"}])), Target(ids=(3,))),
    ("filter notnull", filtered(("region", [{"filter-operator": "notnull"}])), Target(ids=(1, 2, 4))),
    (
        "conditions OR'ed",
        filtered(
            ("region", [{"filter-operator": "eq", "value": "EU"}, {"filter-operator": "eq", "value": "US"}])
        ),
        Target(ids=(1, 4)),
    ),
    (
        "filters AND'ed",
        filtered(
            ("region", [{"filter-operator": "notnull"}]),
            ("amount", [{"filter-operator": "gte", "value": "10"}]),
        ),
        Target(ids=(2, 4)),
    ),
    (
        "filter on a missing column",
        filtered(("regoin", [{"filter-operator": "null"}])),
        "rule 1 (people): filter on column 'regoin' of table app.src_people: the table has no such column; "
        "did you mean 'region'?",
    ),
    (
        "filter value of the wrong type",
        filtered(("amount", [{"filter-operator": "eq", "value": "ten"}])),
        "filter on column 'amount' of table app.src_people: eq: 'ten' is not a finite decimal number",
    ),
    (
        "filter on an exclude rule",
        [
            selection(),
            {**filtered(("id", [{"filter-operator": "null"}]))[0], "rule-id": "5", "rule-action": "exclude"},
        ],
        "rule 5 (people): filters apply to include rules only",
    ),
    # table-settings
    ("parallel-load none", [selection(), table_settings(**{"parallel-load": {"type": "none"}})], Target()),
    (
        "parallel-load ranges",
        [
            selection(),
            table_settings(**{"parallel-load": {"type": "ranges", "columns": ["id"], "boundaries": [["2"]]}}),
        ],
        Target(),
    ),
    (
        "parallel-load ranges on two columns",
        [
            selection(),
            table_settings(
                **{"parallel-load": {"type": "ranges", "columns": ["id", "name"], "boundaries": [["2", "b"]]}}
            ),
        ],
        "rule 3 (settings): parallel-load ranges on more than one column are not supported",
    ),
    (
        "parallel-load ranges, boundaries not increasing",
        [
            selection(),
            table_settings(
                **{"parallel-load": {"type": "ranges", "columns": ["id"], "boundaries": [[3], [3]]}}
            ),
        ],
        "parallel-load ranges on column 'id' of table app.src_people: boundaries must be strictly increasing",
    ),
    (
        "parallel-load subpartitions-auto",
        [selection(), table_settings(**{"parallel-load": {"type": "subpartitions-auto"}})],
        "parallel-load type 'subpartitions-auto' is not supported",
    ),
    (
        "parallel-load partitions-list, Oracle subpartitions",
        [
            selection(),
            table_settings(
                **{"parallel-load": {"type": "partitions-list", "partitions": ["p1"], "subpartitions": ["s"]}}
            ),
        ],
        "parallel-load: 'subpartitions' is for Oracle sources only",
    ),
    (
        "parallel-load partitions-list without partitions",
        [selection(), table_settings(**{"parallel-load": {"type": "partitions-list"}})],
        "parallel-load: 'partitions' must be a non-empty list of partition names",
    ),
    (
        "parallel-load partitions-list naming one twice",
        [
            selection(),
            table_settings(**{"parallel-load": {"type": "partitions-list", "partitions": ["a", "a"]}}),
        ],
        "parallel-load: 'partitions' names a partition twice",
    ),
    (
        "two parallel-load rules on one table",
        [
            selection(),
            table_settings(**{"parallel-load": {"type": "ranges", "columns": ["id"], "boundaries": [[2]]}}),
            {
                **table_settings(**{"parallel-load": {"type": "partitions-list", "partitions": ["p"]}}),
                "rule-id": "4",
            },
        ],
        "rule 4 (settings): table app.src_people already has parallel-load ranges (rule 3 (settings))",
    ),
    (
        "parallel-load partitions on partitions-auto",
        [selection(), table_settings(**{"parallel-load": {"type": "partitions-auto", "partitions": ["a"]}})],
        "parallel-load: 'partitions' belongs to other types than 'partitions-auto'",
    ),
    (
        "lob-settings unlimited",
        [selection(), table_settings(**{"lob-settings": {"mode": "unlimited", "bulk-max-size": 64}})],
        Target(),
    ),
    (
        "lob-settings with bulk-max-size as text",
        [selection(), table_settings(**{"lob-settings": {"mode": "unlimited", "bulk-max-size": "16"}})],
        Target(),
    ),
    (
        "lob-settings with a bad bulk-max-size",
        [selection(), table_settings(**{"lob-settings": {"mode": "unlimited", "bulk-max-size": "lots"}})],
        "rule 3 (settings): lob-settings: 'bulk-max-size' must be a non-negative integer, not 'lots'",
    ),
    (
        "lob-settings limited (short values kept whole)",
        [selection(), table_settings(**{"lob-settings": {"mode": "limited", "bulk-max-size": 64}})],
        Target(values={"name": ["Ann", "bob", "Cy", None]}),
    ),
    ("load-order", [selection(), table_settings(**{"load-order": 3})], Target()),
    (
        "table-settings with a rule-action",
        [selection(), table_settings(**{"rule-action": "include"})],
        "rule 3 (settings): table-settings rules take no 'rule-action'",
    ),
    # transformation: names
    ("rename schema", [selection(), T("schema", "rename", value="dw")], Target(ref="dw.src_people")),
    ("rename table", [selection(), T("table", "rename", value="people")], Target(ref="app.people")),
    (
        "rename column",
        [selection(), T("column", "rename", "id", value="person_id")],
        Target(columns=("person_id", *ALL_COLUMNS[1:]), key=("person_id",)),
    ),
    ("convert-uppercase", [selection(), T("table", "convert-uppercase")], Target(ref="app.SRC_PEOPLE")),
    (
        "convert-lowercase",
        [
            selection(),
            T("column", "convert-uppercase"),
            {**T("column", "convert-lowercase", "n%"), "rule-id": 4},
        ],
        Target(columns=("ID", "name", "PHONE", "REGION", "AMOUNT"), key=("ID",)),
    ),
    ("add-prefix", [selection(), T("table", "add-prefix", value="x_")], Target(ref="app.x_src_people")),
    ("remove-prefix", [selection(), T("table", "remove-prefix", value="src_")], Target(ref="app.people")),
    (
        "replace-prefix",
        [selection(), T("table", "replace-prefix", value="dst_", **{"old-value": "src_"})],
        Target(ref="app.dst_people"),
    ),
    (
        "replace-prefix, no match",
        [selection(), T("table", "replace-prefix", value="dst_", **{"old-value": "tmp_"})],
        Target(),
    ),
    ("add-suffix", [selection(), T("table", "add-suffix", value="_v2")], Target(ref="app.src_people_v2")),
    ("remove-suffix", [selection(), T("table", "remove-suffix", value="ple")], Target(ref="app.src_peo")),
    (
        "replace-suffix on columns",
        [selection(), T("column", "replace-suffix", "%e", value="E2", **{"old-value": "e"})],
        Target(columns=("id", "namE2", "phonE2", "region", "amount")),
    ),
    # transformation: columns
    (
        "remove-column",
        [selection(), T("column", "remove-column", "phone")],
        Target(columns=("id", "name", "region", "amount")),
    ),
    (
        "include-column keeps only the included columns",
        [
            selection(),
            T("column", "include-column", "id"),
            {**T("column", "include-column", "na%"), "rule-id": 4},
        ],
        Target(columns=("id", "name")),
    ),
    (
        "add-column",
        [
            selection(),
            T("column", "add-column", value="twice", expression="$id * 2", **{"data-type": {"type": "int8"}}),
        ],
        Target(columns=(*ALL_COLUMNS, "twice"), values={"twice": [2, 4, 6, 8]}),
    ),
    (
        "define-primary-key",
        [
            selection(),
            T(
                "table",
                "define-primary-key",
                **{"primary-key-def": {"name": "pk", "columns": ["region", "name"]}},
            ),
        ],
        Target(key=("region", "name")),
    ),
    (
        "define-primary-key on a missing column",
        [selection(), T("table", "define-primary-key", **{"primary-key-def": {"columns": ["nope"]}})],
        "rule 2 (t): table app.src_people has no column 'nope'",
    ),
    # transformation: data masking
    (
        "data-masking-digits-mask",
        [selection(), T("column", "data-masking-digits-mask", "phone", value="*")],
        Target(values={"phone": digits("*")}),
    ),
    (
        "data-masking-hash-mask (widens a short varchar)",
        [selection(), T("column", "data-masking-hash-mask", "phone")],
        Target(values={"phone": sha(BATCH.column(2).to_pylist())}),
    ),
    (
        "data masking of a non-text column",
        [selection(), T("column", "data-masking-digits-randomize", "amount")],
        "rule 2 (t): data-masking-digits-randomize masks text columns; column 'amount' of table "
        "app.src_people is decimal(10,2)",
    ),
    (
        "data masking of a key column",
        [selection(), T("column", "data-masking-hash-mask", "id")],
        "masks text columns",
    ),
    (
        "digits-mask needs one printable character",
        [selection(), T("column", "data-masking-digits-mask", "phone", value="##")],
        "data-masking-digits-mask: 'value' must be one printable ASCII character",
    ),
    # refused, by name
    (
        "change-data-type",
        [
            selection(),
            T("column", "change-data-type", "amount", **{"data-type": {"type": "string", "length": 9}}),
        ],
        Target(values={"amount": ["5.00", "10.00", "99.99", "100.01"]}),
    ),
    (
        "change-data-type of every column of a type (object-locator data-type)",
        [
            selection(),
            {
                **T("column", "change-data-type", "%", **{"data-type": {"type": "string", "length": 12}}),
                "object-locator": {
                    "schema-name": "app",
                    "table-name": "%",
                    "column-name": "%",
                    "data-type": "numeric",
                },
            },
        ],
        Target(values={"amount": ["5.00", "10.00", "99.99", "100.01"], "id": [1, 2, 3, 4]}),
    ),
    (
        "object-locator data-type with another action",
        [
            selection(),
            {
                **T("column", "remove-column", "%"),
                "object-locator": {
                    "schema-name": "app",
                    "table-name": "%",
                    "column-name": "%",
                    "data-type": "int8",
                },
            },
        ],
        "rule 2 (t): object-locator: 'data-type' selects columns for rule-action change-data-type only",
    ),
    (
        "change-data-type of the key",
        [selection(), T("column", "change-data-type", "id", **{"data-type": {"type": "int4"}})],
        Target(values={"id": [1, 2, 3, 4]}),
    ),
    (
        "change-data-type between types that never convert",
        [selection(), T("column", "change-data-type", "amount", **{"data-type": {"type": "date"}})],
        "rule 2 (t): column 'amount' of table app.src_people is decimal(10,2), which cannot be converted "
        "to date",
    ),
    (
        "add-before-image-columns (pk-only by default; NULL in the full load)",
        [selection(), T("column", "add-before-image-columns")],
        Target(columns=(*ALL_COLUMNS, "BI_id"), values={"BI_id": [None] * 4}),
    ),
    (
        "add-before-image-columns non-lob, prefix and suffix",
        [
            selection(),
            T(
                "column",
                "add-before-image-columns",
                **{
                    "before-image-def": {
                        "column-prefix": "old_",
                        "column-suffix": "_v",
                        "column-filter": "non-lob",
                    }
                },
            ),
        ],
        # name and region are text without a length (LOBs to the service), phone a varchar(20)
        Target(columns=(*ALL_COLUMNS, "old_id_v", "old_phone_v", "old_amount_v")),
    ),
    (
        "add-before-image-columns all, of the columns a column-name matches",
        [
            selection(),
            T("column", "add-before-image-columns", "na%", **{"before-image-def": {"column-filter": "all"}}),
        ],
        Target(columns=(*ALL_COLUMNS, "BI_name")),
    ),
    (
        "add-before-image-columns of a masked column is masked",
        [
            selection(),
            T("column", "data-masking-digits-mask", "phone", value="#"),
            {
                **T(
                    "column",
                    "add-before-image-columns",
                    "phone",
                    **{"before-image-def": {"column-filter": "all"}},
                ),
                "rule-id": "4",
            },
        ],
        Target(columns=(*ALL_COLUMNS, "BI_phone"), values={"phone": digits("#"), "BI_phone": [None] * 4}),
    ),
    (
        "add-before-image-columns on a table",
        [selection(), T("table", "add-before-image-columns")],
        "rule 2 (t): rule-action 'add-before-image-columns' needs rule-target 'column'",
    ),
    (
        "add-before-image-columns with an unknown column-filter",
        [
            selection(),
            T("column", "add-before-image-columns", **{"before-image-def": {"column-filter": "pk_only"}}),
        ],
        "rule 2 (t): before-image-def: 'column-filter' must be one of pk-only, non-lob, all, not 'pk_only'; "
        "did you mean 'pk-only'?",
    ),
    (
        "add-before-image-columns with neither prefix nor suffix",
        [selection(), T("column", "add-before-image-columns", **{"before-image-def": {"column-prefix": ""}})],
        "rule 2 (t): before-image-def: 'column-prefix' and 'column-suffix' cannot both be empty",
    ),
    (
        "add-before-image-columns onto a column that exists",
        [
            selection(),
            T("column", "add-column", value="BI_id", expression="$id", **{"data-type": {"type": "int8"}}),
            {**T("column", "add-before-image-columns"), "rule-id": "4"},
        ],
        "rule 4 (t): table app.src_people already has a column 'BI_id'",
    ),
    ("tablespace target", [selection(), T("table-tablespace", "rename", value="x")], "Oracle tablespaces"),
    (
        "post-processing",
        [selection(), {**table_settings(), "rule-type": "post-processing", "rule-action": "add-tag"}],
        "rule 3 (settings): rule-type 'post-processing' (object tagging) is not supported",
    ),
]


@pytest.mark.parametrize(("rules", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rule(rules: list[dict[str, Any]], expected: Target | str) -> None:
    if isinstance(expected, str):
        with pytest.raises(ConfigError, match=re.escape(expected)):
            TableMappings.parse({"rules": rules}, ORIGIN).select([PEOPLE])
        return
    [mapped] = TableMappings.parse({"rules": rules}, ORIGIN).select([PEOPLE])
    assert str(mapped.target.ref) == expected.ref
    assert tuple(mapped.target.column_names) == expected.columns
    assert mapped.target.primary_key == expected.key
    batch = BATCH if mapped.row_filter is None else mapped.row_filter.apply(BATCH)
    projected = mapped.project(batch)
    assert projected.schema == mapped.target.arrow_schema()
    assert tuple(batch.column(0).to_pylist()) == expected.ids
    for name, values in (expected.values or {}).items():
        assert projected.column(projected.schema.get_field_index(name)).to_pylist() == values
    # CDC sees the same filter and masks as the full load
    for row, kept in zip(BATCH.to_pylist(), [i in expected.ids for i in range(1, 5)], strict=True):
        assert mapped.row_filter is None or mapped.row_filter.matches(row) == kept
        target_row = {c.target: row[c.source] for c in mapped.columns if c.source is not None}
        mapped.convert_row(target_row)
        mapped.mask_row(target_row)
        for name, values in (expected.values or {}).items():
            if name in target_row:
                assert target_row[name] == values[row["id"] - 1]


def test_hash_mask_widens_a_short_varchar() -> None:
    rules = [selection(), T("column", "data-masking-hash-mask", "phone")]
    [mapped] = TableMappings.parse({"rules": rules}, ORIGIN).select([PEOPLE])
    assert mapped.target.column("phone").type == varchar(64)
    assert not mapped.passes_values


def test_digits_randomize_keeps_everything_but_digits() -> None:
    rules = [selection(), T("column", "data-masking-digits-randomize", "phone")]
    [mapped] = TableMappings.parse({"rules": rules}, ORIGIN).select([PEOPLE])
    masked = mapped.project(BATCH).column(2).to_pylist()
    for before, after in zip(BATCH.column(2).to_pylist(), masked, strict=True):
        assert (before is None) == (after is None)
        if before is not None:
            assert re.sub("[0-9]", "0", before) == re.sub("[0-9]", "0", after)


def test_load_order_puts_higher_first_then_input_order() -> None:
    tables = [
        TableSchema(TableRef("app", name), (Column("id", simple(Kind.INT64)),), ("id",)) for name in "abcd"
    ]
    rules = [
        {**selection(), "object-locator": {"schema-name": "app", "table-name": "%"}},
        {
            **selection(),
            "rule-id": "2",
            "object-locator": {"schema-name": "app", "table-name": "c"},
            "load-order": 5,
        },
        {**table_settings(), "object-locator": {"schema-name": "app", "table-name": "b"}, "load-order": 9},
    ]
    mapped = TableMappings.parse({"rules": rules}, ORIGIN).select(tables)
    assert [m.source.ref.name for m in mapped] == ["b", "c", "a", "d"]


def test_misspelt_keys_are_refused_with_suggestions_all_in_one_pass() -> None:
    rules = [
        {**selection(), "filter": [], "object-locator": {"schema-name": "app", "tabel-name": "x"}},
        {
            **selection(),
            "rule-id": "2",
            "rule-name": "second",
            "filters": [
                {
                    "filter-type": "source",
                    "colum-name": "id",
                    "filter-conditions": [{"filter-operater": "eq", "value": "1"}],
                }
            ],
        },
        {**table_settings(), "parallel-load": {"typ": "none"}, "lob-setting": {}},
        {
            **T(
                "column",
                "add-column",
                value="x",
                expression="1",
                **{"data-type": {"type": "int8", "lenght": 3}},
            ),
            "rule-id": "4",
            "rule-name": "added",
            "vaule": "y",
        },
        {
            **T("table", "define-primary-key", **{"primary-key-def": {"columns": ["id"], "orign": "x"}}),
            "rule-id": 5,
        },
    ]
    with pytest.raises(ConfigError) as info:
        TableMappings.parse({"rules": rules}, ORIGIN)
    lines = str(info.value).splitlines()
    expected = [
        "rule 1 (people): unknown key 'filter'; did you mean 'filters'?",
        "rule 1 (people): unknown key 'tabel-name' in object-locator; did you mean 'table-name'?",
        "rule 2 (second): unknown key 'colum-name' in filters[0]; did you mean 'column-name'?",
        "rule 2 (second): unknown key 'filter-operater' in filters[0].filter-conditions[0]; "
        "did you mean 'filter-operator'?",
        "rule 3 (settings): unknown key 'lob-setting'; did you mean 'lob-settings'?",
        "rule 3 (settings): unknown key 'typ' in parallel-load; did you mean 'type'?",
        "rule 4 (added): unknown key 'vaule'; did you mean 'value'?",
        "rule 4 (added): unknown key 'lenght' in data-type; did you mean 'length'?",
        "rule 5 (t): unknown key 'orign' in primary-key-def; did you mean 'origin'?",
    ]
    for text in expected:
        assert f"{ORIGIN}: {text}" in lines, (text, lines)


@pytest.mark.parametrize(
    ("data_type", "column", "row", "message"),
    [
        ({"type": "int4"}, "region", 0, "column 'region': 'EU' cannot be converted to int32"),
        ({"type": "string", "length": 3}, "name", None, None),
        (
            {"type": "string", "length": 2},
            "phone",
            0,
            "'+1 555-0101' cannot be converted to varchar(2): longer than 2",
        ),
        ({"type": "int1"}, "amount", 2, "column 'amount': Decimal('99.99') cannot be converted to int16"),
    ],
)
def test_change_data_type_refuses_values_that_do_not_convert(
    data_type: dict[str, Any], column: str, row: int | None, message: str | None
) -> None:
    rules = [selection(), T("column", "change-data-type", column, **{"data-type": data_type})]
    [mapped] = TableMappings.parse({"rules": rules}, ORIGIN).select([PEOPLE])
    if message is None:
        mapped.project(BATCH)
        return
    with pytest.raises(DataError, match=re.escape(message)) as info:
        mapped.project(BATCH)
    assert (info.value.row, info.value.column, info.value.load_usable) == (row, column, True)
    cdc_row = dict(BATCH.to_pylist()[row])
    with pytest.raises(DataError, match=re.escape(message)):
        mapped.convert_row(cdc_row)


def test_every_table_problem_is_reported_at_once() -> None:
    other = TableSchema(TableRef("app", "other"), (Column("id", simple(Kind.INT64)),), ("id",))
    rules = [
        {**selection(), "object-locator": {"schema-name": "app", "table-name": "%"}},
        T("column", "data-masking-hash-mask", "id"),
    ]
    rules[1]["object-locator"]["table-name"] = "%"
    with pytest.raises(ConfigError) as info:
        TableMappings.parse({"rules": rules}, ORIGIN).select([PEOPLE, other])
    assert len(str(info.value).splitlines()) == 2
    assert "app.src_people" in str(info.value) and "app.other" in str(info.value)


@pytest.mark.parametrize("boundaries", [[["2"]], [[1], [3]], [["0"], ["9"]]])
def test_range_segments_hold_every_row_once(boundaries: list[list[Any]]) -> None:
    rules = [
        *filtered(("region", [{"filter-operator": "notnull"}, {"filter-operator": "null"}])),
        table_settings(
            **{"parallel-load": {"type": "ranges", "columns": ["amount"], "boundaries": boundaries}}
        ),
    ]
    with_null = [*BATCH.to_pylist(), {**BATCH.to_pylist()[0], "id": 5, "amount": None}]
    [mapped] = TableMappings.parse({"rules": rules}, ORIGIN).select([PEOPLE])
    assert len(mapped.segments) == len(boundaries) + 2
    for row in with_null:
        assert sum(segment.matches(row) for segment in mapped.segments) == 1, row


def test_a_defined_key_other_than_the_sources_is_a_capture_warning() -> None:
    from conveyor.replication.cdc.task import _mapping_warnings

    defined = [
        selection(),
        T("table", "define-primary-key", **{"primary-key-def": {"columns": ["region"]}}),
    ]
    [changed] = TableMappings.parse({"rules": defined}, ORIGIN).select([PEOPLE])
    [same] = TableMappings.parse({"rules": [selection()]}, ORIGIN).select([PEOPLE])
    [warning] = _mapping_warnings([changed, same])
    assert (
        "table app.src_people: the target's key (region, define-primary-key) is not the source's" in warning
    )


def test_cdc_rows_equal_full_load_rows_through_every_column_transformation() -> None:
    from conveyor.replication.cdc.capture_table import table_reducer

    rules = [
        selection(),
        T(
            "column",
            "add-column",
            value="label",
            expression="'tel ' || $phone",
            **{"data-type": {"type": "string"}},
        ),
        {**T("column", "data-masking-digits-mask", "label", value="*"), "rule-id": "3"},
        {**T("column", "data-masking-hash-mask", "name"), "rule-id": "4"},
        {
            **T("column", "change-data-type", "amount", **{"data-type": {"type": "string", "length": 10}}),
            "rule-id": "5",
        },
        {**T("column", "rename", "region", value="area"), "rule-id": "6"},
    ]
    [mapped] = TableMappings.parse({"rules": rules}, ORIGIN).select([PEOPLE])
    full_load = mapped.project(BATCH).to_pylist()
    reducer = table_reducer(mapped)
    for row in BATCH.to_pylist():
        reducer.add(RowChange(PEOPLE.ref, Op.INSERT, dict(row)))
    assert sorted(reducer.changes().upserts.to_pylist(), key=lambda r: r["id"]) == full_load
    assert full_load[0]["label"] == "tel +* ***-****"


def test_before_image_columns_in_change_capture() -> None:
    """INSERTs get NULL, an UPDATE its columns' values before it (the old row
    the source sent, or the unchanged key), converted and masked as the
    columns are; a value the source did not send suspends the table (DataError)."""
    from conveyor.replication.cdc.capture_table import table_reducer

    rules = [
        selection(),
        T("column", "data-masking-digits-mask", "phone", value="#"),
        {
            **T("column", "change-data-type", "amount", **{"data-type": {"type": "string", "length": 10}}),
            "rule-id": "3",
        },
        {
            **T("column", "add-before-image-columns", **{"before-image-def": {"column-filter": "all"}}),
            "rule-id": "4",
        },
    ]
    [mapped] = TableMappings.parse({"rules": rules}, ORIGIN).select([PEOPLE])
    old = {"id": 1, "name": "Ann", "phone": "555 0101", "region": "EU", "amount": Decimal("5.00")}
    new = {**old, "name": "Anne", "amount": Decimal("6.50")}
    moved = {**new, "id": 7}
    reducer = table_reducer(mapped)
    reducer.add(RowChange(PEOPLE.ref, Op.INSERT, dict(BATCH.to_pylist()[1])))
    reducer.add(RowChange(PEOPLE.ref, Op.UPDATE, dict(new), old_key=dict(old)))  # REPLICA IDENTITY FULL
    reducer.add(RowChange(PEOPLE.ref, Op.UPDATE, dict(moved), before=dict(new)))  # MySQL's row image
    rows = {r["id"]: r for r in reducer.changes().upserts.to_pylist()}
    assert {k: v for k, v in rows[2].items() if k.startswith("BI_")} == dict.fromkeys(
        ["BI_id", "BI_name", "BI_phone", "BI_region", "BI_amount"]
    )
    assert {k: v for k, v in rows[7].items() if k.startswith("BI_")} == {
        "BI_id": 1,
        "BI_name": "Anne",
        "BI_phone": "### ####",
        "BI_region": "EU",
        "BI_amount": "6.50",
    }

    [keys_only] = TableMappings.parse(
        {"rules": [selection(), T("column", "add-before-image-columns")]}, ORIGIN
    ).select([PEOPLE])
    reducer = table_reducer(keys_only)
    reducer.add(RowChange(PEOPLE.ref, Op.UPDATE, {**new, "id": 2}))  # the key did not change
    reducer.add(RowChange(PEOPLE.ref, Op.UPDATE, dict(moved), old_key={"id": 1}))
    assert sorted((r["id"], r["BI_id"]) for r in reducer.changes().upserts.to_pylist()) == [(2, 2), (7, 1)]

    reducer = table_reducer(mapped)
    with pytest.raises(
        DataError, match="before-image column 'BI_name' needs the value of 'name' before the UPDATE"
    ):
        reducer.add(RowChange(PEOPLE.ref, Op.UPDATE, dict(new)))


def test_partitions_list_names_reach_the_plan_in_rule_order() -> None:
    """partitions-list loads partition by partition, its named ones first
    (checked against the table's partitions when the load starts)."""
    load = {"type": "partitions-list", "partitions": ["p_b", "p_a"]}
    [mapped] = TableMappings.parse(
        {"rules": [selection(), table_settings(**{"parallel-load": load})]}, ORIGIN
    ).select([PEOPLE])
    assert (mapped.partitions_auto, mapped.partitions_named) == (True, ("p_b", "p_a"))


LOBS = TableSchema(
    TableRef("app", "docs"),
    (
        Column("id", simple(Kind.INT64), nullable=False),
        Column("body", simple(Kind.TEXT)),
        Column("raw", simple(Kind.BYTES)),
        Column("meta", simple(Kind.JSON)),
        Column("title", varchar(5000)),
    ),
    ("id",),
)


def test_limited_lob_mode_cuts_text_and_binary_lobs_alike_in_load_and_capture() -> None:
    """Text is cut to the limit in UTF-8 bytes (never inside a character),
    binary to the limit in bytes; JSON and a varchar(n) are not LOBs to cut.
    A table-settings rule's limit wins over the task's; 'unlimited' copies whole."""
    from conveyor.replication.cdc.capture_table import table_reducer
    from conveyor.replication.settings import TargetMetadata

    long_text, wide_text, blob = "x" * 3000, "é" * 700, bytes(range(256)) * 12
    document = '{"k": "' + "v" * 3000 + '"}'
    batch = pa.RecordBatch.from_pylist(
        [
            {"id": 1, "body": long_text, "raw": blob, "meta": document, "title": long_text},
            {"id": 2, "body": wide_text, "raw": b"short", "meta": None, "title": None},
        ],
        schema=LOBS.arrow_schema(),
    )
    select = {**selection(), "object-locator": {"schema-name": "app", "table-name": "docs"}}
    limited = TargetMetadata.model_validate({"LimitedSizeLobMode": True, "LobMaxSize": 1})
    [mapped] = TableMappings.parse({"rules": [select]}, ORIGIN).for_task(limited).select([LOBS])
    loaded = mapped.project(batch).to_pylist()
    assert [len(r["body"].encode()) for r in loaded] == [1024, 1024]
    assert loaded[1]["body"] == "é" * 512
    assert [r["raw"] for r in loaded] == [blob[:1024], b"short"]
    assert loaded[0]["meta"] == document and loaded[0]["title"] == long_text
    keyed = TableSchema(LOBS.ref, LOBS.columns, ("body",))  # a text key is never cut
    [by_text] = TableMappings.parse({"rules": [select]}, ORIGIN).for_task(limited).select([keyed])
    assert by_text.lob_limit is None or "body" not in by_text.lob_limit.columns
    reducer = table_reducer(mapped)
    for row in batch.to_pylist():
        reducer.add(RowChange(LOBS.ref, Op.INSERT, dict(row)))
    assert sorted(reducer.changes().upserts.to_pylist(), key=lambda r: r["id"]) == loaded

    per_table = {
        **table_settings(**{"lob-settings": {"mode": "limited", "bulk-max-size": "2"}}),
        "object-locator": {"schema-name": "app", "table-name": "docs"},
    }
    [mapped] = TableMappings.parse({"rules": [select, per_table]}, ORIGIN).for_task(limited).select([LOBS])
    assert len(mapped.project(batch).column(1)[0].as_py()) == 2048
    whole = {**per_table, "lob-settings": {"mode": "unlimited"}}
    [mapped] = TableMappings.parse({"rules": [select, whole]}, ORIGIN).for_task(limited).select([LOBS])
    assert mapped.lob_limit is None and mapped.project(batch).column(1)[0].as_py() == long_text
    # Unwritten, the service's default (limited, 32 KB) is not taken: whole values.
    [mapped] = TableMappings.parse({"rules": [select]}, ORIGIN).for_task(TargetMetadata()).select([LOBS])
    assert mapped.lob_limit is None


@pytest.mark.parametrize(
    ("written", "limit"),
    [
        ({}, None),
        ({"LimitedSizeLobMode": True}, 32),
        ({"LobMaxSize": 8}, 8),
        ({"LimitedSizeLobMode": False, "LobMaxSize": 8}, None),
        ({"LimitedSizeLobMode": False, "FullLobMode": True, "LobMaxSize": 8}, None),
        ({"LimitedSizeLobMode": True, "SupportLobs": False}, None),
        ({"LimitedSizeLobMode": True, "LobMaxSize": 0}, None),
    ],
)
def test_the_lob_limit_as_written(written: dict[str, Any], limit: int | None) -> None:
    from conveyor.replication.settings import TargetMetadata

    assert TargetMetadata.model_validate(written).lob_limit() == limit
