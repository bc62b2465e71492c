from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

import pyarrow as pa
import pytest

from conveyor.core.errors import ConfigError
from conveyor.core.schema import Column, TableRef, TableSchema
from conveyor.core.types import Kind, simple
from conveyor.replication.identifiers import EXACT, TargetNames, collisions
from conveyor.replication.mapped_table import ColumnMap
from conveyor.replication.mappings import TableMappings

ORIGIN = "mappings.json"


def table(schema: str, name: str, *cols: str, key: tuple[str, ...] = ()) -> TableSchema:
    return TableSchema(TableRef(schema, name), tuple(Column(c, simple(Kind.INT64)) for c in cols), key)


def sel(rid: int, schema: str, tbl: str, action: str = "include") -> dict[str, Any]:
    return {
        "rule-type": "selection",
        "rule-id": str(rid),
        "rule-name": f"r{rid}",
        "object-locator": {"schema-name": schema, "table-name": tbl},
        "rule-action": action,
    }


def tr(rid: int, target: str, action: str, value: str | None = None, **loc: str) -> dict[str, Any]:
    locator = {"schema-name": loc.get("schema", "%")}
    if target != "schema":
        locator["table-name"] = loc.get("table", "%")
    if target == "column":
        locator["column-name"] = loc.get("column", "%")
    rule: dict[str, Any] = {
        "rule-type": "transformation",
        "rule-id": rid,
        "rule-name": f"t{rid}",
        "rule-target": target,
        "object-locator": locator,
        "rule-action": action,
    }
    if value is not None:
        rule["value"] = value
    return rule


ALL = sel(1, "%", "%")
TABLES = [
    table("public", "users", "id", "name", key=("id",)),
    table("public", "user_x", "id"),
    table("public", "orders", "id", "total"),
    table("sales", "orders", "id"),
    table("Public", "Users", "id"),
]


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        ([ALL], ["public.users", "public.user_x", "public.orders", "sales.orders", "Public.Users"]),
        ([sel(1, "public", "%")], ["public.users", "public.user_x", "public.orders"]),
        ([sel(1, "%", "user%")], ["public.users", "public.user_x"]),
        ([sel(1, "public", "user_")], []),  # '_' is literal, not a one-character wildcard
        ([sel(1, "%", "%s")], ["public.users", "public.orders", "sales.orders", "Public.Users"]),
        ([sel(2, "%", "orders", "exclude"), ALL], ["public.users", "public.user_x", "Public.Users"]),
        ([ALL, sel(2, "public", "%", "exclude")], ["sales.orders", "Public.Users"]),
        ([sel(1, "public", "users", "explicit")], ["public.users"]),
        ([sel(1, "public", "user%", "explicit")], []),  # explicit does not expand wildcards
        ([sel(1, "Public", "%")], ["Public.Users"]),  # case-sensitive
    ],
)
def test_selection(rules: list[dict[str, Any]], expected: list[str]) -> None:
    mappings = TableMappings.parse({"rules": rules}, ORIGIN)
    if not expected:
        with pytest.raises(ConfigError, match=re.escape("match none of the 5 source tables: public.users")):
            mappings.select(TABLES)
        return
    assert [str(m.source.ref) for m in mappings.select(TABLES)] == expected


USERS = table("public", "users", "id", "name", "email_addr", key=("id",))


@pytest.mark.parametrize(
    ("rules", "ref", "columns", "key"),
    [
        ([], "public.users", ["id", "name", "email_addr"], ["id"]),
        ([tr(2, "schema", "rename", "app")], "app.users", ["id", "name", "email_addr"], ["id"]),
        ([tr(2, "schema", "convert-uppercase")], "PUBLIC.users", ["id", "name", "email_addr"], ["id"]),
        ([tr(2, "table", "rename", "people")], "public.people", ["id", "name", "email_addr"], ["id"]),
        ([tr(2, "table", "add-prefix", "stg_")], "public.stg_users", ["id", "name", "email_addr"], ["id"]),
        ([tr(2, "table", "add-suffix", "_v2")], "public.users_v2", ["id", "name", "email_addr"], ["id"]),
        ([tr(2, "table", "remove-prefix", "us")], "public.ers", ["id", "name", "email_addr"], ["id"]),
        ([tr(2, "table", "remove-suffix", "rs")], "public.use", ["id", "name", "email_addr"], ["id"]),
        ([tr(2, "table", "remove-prefix", "zz")], "public.users", ["id", "name", "email_addr"], ["id"]),
        (
            [tr(2, "table", "rename", "x", table="other")],
            "public.users",
            ["id", "name", "email_addr"],
            ["id"],
        ),
        ([tr(2, "column", "convert-uppercase")], "public.users", ["ID", "NAME", "EMAIL_ADDR"], ["ID"]),
        (
            [tr(2, "column", "rename", "user_id", column="id")],
            "public.users",
            ["user_id", "name", "email_addr"],
            ["user_id"],
        ),
        ([tr(2, "column", "remove-column", column="id")], "public.users", ["name", "email_addr"], []),
        ([tr(2, "column", "remove-column", column="%_%")], "public.users", ["id", "name"], ["id"]),
        (
            [tr(2, "column", "add-prefix", "c_", column="%a%")],
            "public.users",
            ["id", "c_name", "c_email_addr"],
            ["id"],
        ),
        ([tr(2, "column", "remove-suffix", "_addr")], "public.users", ["id", "name", "email"], ["id"]),
        (
            [tr(2, "column", "convert-uppercase"), tr(3, "column", "add-suffix", "_x", column="id")],
            "public.users",
            ["ID_x", "NAME", "EMAIL_ADDR"],
            ["ID_x"],
        ),
        (
            [tr(2, "column", "add-suffix", "_x", column="id"), tr(3, "column", "convert-uppercase")],
            "public.users",
            ["ID_X", "NAME", "EMAIL_ADDR"],
            ["ID_X"],
        ),
        (
            [tr(2, "schema", "convert-lowercase"), tr(3, "table", "convert-uppercase")],
            "public.USERS",
            ["id", "name", "email_addr"],
            ["id"],
        ),
    ],
)
def test_transformations(rules: list[dict[str, Any]], ref: str, columns: list[str], key: list[str]) -> None:
    [mapped] = TableMappings.parse({"rules": [ALL, *rules]}, ORIGIN).select([USERS])
    assert str(mapped.target.ref) == ref
    assert mapped.target.column_names == columns
    assert list(mapped.target.primary_key) == key
    assert [c.target for c in mapped.columns] == columns
    assert mapped.source is USERS


def rule_doc(*rules: object) -> dict[str, Any]:
    return {"rules": [ALL, *rules]}


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("{not json", "mappings.json: invalid JSON"),
        ("[]", "must be a JSON object with 'rules'"),
        ({}, "missing 'rules'"),
        ({"rules": {}}, "'rules' must be a list, not dict"),
        ({"rules": []}, "needs at least one selection rule"),
        ({"rules": [sel(1, "%", "%", "exclude")]}, "needs at least one selection rule"),
        (rule_doc(5), "rule #2: must be an object, not int"),
        (
            rule_doc({k: v for k, v in sel(2, "%", "%").items() if k != "rule-id"}),
            "rule #2: missing 'rule-id'",
        ),
        (rule_doc({**sel(2, "%", "%"), "rule-id": 2.5}), "'rule-id' must be a string or an integer"),
        (
            rule_doc({k: v for k, v in sel(2, "%", "%").items() if k != "rule-name"}),
            "rule 2: missing 'rule-name'",
        ),
        (rule_doc({**sel(2, "%", "%"), "rule-name": 7}), "rule 2: 'rule-name' must be a string, not int"),
        (rule_doc(sel(1, "a", "b")), "rule 1 (r1): duplicate rule-id 1"),
        (rule_doc({**sel(2, "%", "%"), "rule-type": "bogus"}), "rule 2 (r2): unknown rule-type 'bogus'"),
        (
            rule_doc({**sel(2, "%", "%"), "rule-type": "table-settings"}),
            "rule 2 (r2): table-settings rules take no 'rule-action'",
        ),
        (rule_doc(sel(2, "%", "%", "foo")), "rule 2 (r2): unknown rule-action 'foo'"),
        (rule_doc(tr(2, "column", "foo")), "rule 2 (t2): unknown rule-action 'foo'"),
        (rule_doc(tr(2, "table", "replace-prefix", "x")), "rule 2 (t2): missing 'old-value'"),
        (
            rule_doc(tr(2, "table", "data-masking-hash-mask")),
            "rule-action 'data-masking-hash-mask' needs rule-target 'column'",
        ),
        (rule_doc(tr(2, "table", "define-primary-key")), "rule 2 (t2): missing 'primary-key-def'"),
        (
            rule_doc({**sel(2, "%", "%"), "filters": [{"filter-type": "source"}]}),
            "rule 2 (r2): filters[0]: missing 'column-name'",
        ),
        (rule_doc({**sel(2, "%", "%"), "filters": "x"}), "'filters' must be a list"),
        (rule_doc({**sel(2, "%", "%"), "object-locator": None}), "missing 'object-locator'"),
        (
            rule_doc({**sel(2, "%", "%"), "object-locator": []}),
            "'object-locator' must be an object, not list",
        ),
        (rule_doc({**sel(2, "%", "%"), "object-locator": {"schema-name": "a"}}), "missing 'table-name'"),
        (
            rule_doc({k: v for k, v in tr(2, "table", "rename", "x").items() if k != "rule-target"}),
            "missing 'rule-target'",
        ),
        (rule_doc(tr(2, "index-tablespace", "rename", "x")), "rule-target 'index-tablespace' (Oracle"),
        (rule_doc(tr(2, "view", "rename", "x")), "unknown rule-target 'view'"),
        (rule_doc(tr(2, "table", "rename")), "rule 2 (t2): missing 'value'"),
        (rule_doc(tr(2, "table", "add-prefix", "")), "'value' must not be empty"),
        (rule_doc(tr(2, "table", "remove-column")), "'remove-column' needs rule-target 'column'"),
        (
            rule_doc(
                {
                    **tr(2, "column", "remove-column"),
                    "object-locator": {"schema-name": "%", "table-name": "%"},
                }
            ),
            "missing 'column-name'",
        ),
    ],
)
def test_parse_errors(doc: dict[str, Any] | str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        TableMappings.parse(doc, ORIGIN)


@pytest.mark.parametrize(
    ("rules", "tables", "message"),
    [
        (
            [tr(2, "column", "rename", "name", column="email_addr")],
            [USERS],
            "mappings.json: rule 2 (t2): renaming columns of table public.users makes 'name' collide",
        ),
        (
            [tr(2, "column", "remove-column")],
            [USERS],
            "rule 2 (t2): removes every column of table public.users",
        ),
        (
            [tr(2, "column", "remove-column", column="id"), tr(3, "column", "remove-column", column="%a%")],
            [USERS],
            "rule 3 (t3): removes every column of table public.users",
        ),
        (
            [tr(2, "table", "remove-prefix", "users")],
            [USERS],
            "rule 2 (t2): leaves table public.users with an empty name",
        ),
        (
            [tr(2, "column", "remove-prefix", "id", column="id")],
            [USERS],
            "leaves column 'id' of table public.users",
        ),
    ],
)
def test_select_errors(rules: list[dict[str, Any]], tables: list[TableSchema], message: str) -> None:
    mappings = TableMappings.parse(rule_doc(*rules), ORIGIN)
    with pytest.raises(ConfigError, match=re.escape(message)):
        mappings.select(tables)


def test_two_tables_renamed_to_one_target_name_are_refused_by_the_plan_alone() -> None:
    """The mappings keep both tables; the plan's collision check refuses just those two."""
    mappings = TableMappings.parse(rule_doc(tr(2, "schema", "rename", "one")), ORIGIN)
    mapped = mappings.select([table("a", "t", "id"), table("b", "t", "id"), table("a", "u", "id")])
    assert sorted(str(m.target.ref) for m in mapped) == ["one.t", "one.t", "one.u"]
    names = [
        TargetNames(m.source.ref, m.target.ref, [(c.source, c.target) for c in m.columns]) for m in mapped
    ]
    refused = collisions(names, EXACT)
    assert sorted(str(ref) for ref in refused) == ["a.t", "b.t"]
    assert (
        "target table one.t (source table a.t) collides with one.t (source table b.t)"
        in refused[TableRef("a", "t")]
    )


def test_nothing_selected_lists_at_most_20_tables() -> None:
    tables = [table("s", f"t{i:02d}", "id") for i in range(25)]
    mappings = TableMappings.parse({"rules": [sel(1, "other", "%")]}, ORIGIN)
    with pytest.raises(ConfigError) as info:
        mappings.select(tables)
    text = str(info.value)
    assert "none of the 25 source tables" in text
    assert "s.t19" in text and "s.t20" not in text
    assert text.endswith("(and 5 more)")


def test_parse_json_text_and_integer_rule_id() -> None:
    text = json.dumps({"rules": [{**ALL, "rule-id": 1}, tr(2, "table", "rename", "people", table="users")]})
    [mapped] = TableMappings.parse(text, ORIGIN).select([USERS])
    assert mapped.target.ref == TableRef("public", "people")


def test_project_renames_and_drops_columns() -> None:
    rules = rule_doc(
        tr(2, "column", "remove-column", column="name"),
        tr(3, "column", "rename", "user_id", column="id"),
        tr(4, "table", "rename", "people"),
    )
    [mapped] = TableMappings.parse(rules, ORIGIN).select([USERS])
    assert mapped.columns == (ColumnMap("user_id", "id"), ColumnMap("email_addr", "email_addr"))
    assert mapped.source_columns() == ["id", "email_addr"]
    batch = pa.RecordBatch.from_pydict(
        {
            "email_addr": pa.array([10, 20, 30], pa.int64()),
            "name": pa.array([1, 2, 3], pa.int64()),
            "id": pa.array([7, 8, 9], pa.int64()),
        }
    )
    out = mapped.project(batch)
    assert out.schema == mapped.target.arrow_schema()
    assert out.to_pydict() == {"user_id": [7, 8, 9], "email_addr": [10, 20, 30]}


def test_project_missing_source_column() -> None:
    [mapped] = TableMappings.parse({"rules": [ALL]}, ORIGIN).select([USERS])
    batch = pa.RecordBatch.from_pydict({"id": pa.array([1], pa.int64())})
    with pytest.raises(ValueError, match="no column 'name'"):
        mapped.project(batch)


def add_col(rid: int, value: str, expression: str, table: str = "%", **data_type: Any) -> dict[str, Any]:
    rule = tr(rid, "column", "add-column", value, table=table)
    del rule["object-locator"]["column-name"]
    rule["expression"] = expression
    rule["data-type"] = data_type or {"type": "int8"}
    return rule


@pytest.mark.parametrize(
    ("rules", "maps", "values"),
    [
        # appended after the source columns, in rule order
        (
            [add_col(2, "twice", "$id * 2"), add_col(3, "label", "'n'||$name", type="string")],
            [("id", "id"), ("name", "name"), ("email_addr", "email_addr"), ("twice", None), ("label", None)],
            {"twice": [14, 16], "label": ["n1", "n2"]},
        ),
        # a later rule sees the added column under its name (rename, convert-uppercase)
        (
            [add_col(2, "twice", "$id * 2"), tr(3, "column", "rename", "double", column="twice")],
            [("id", "id"), ("name", "name"), ("email_addr", "email_addr"), ("double", None)],
            {"double": [14, 16]},
        ),
        (
            [add_col(2, "twice", "$id * 2"), tr(3, "column", "convert-uppercase")],
            [("ID", "id"), ("NAME", "name"), ("EMAIL_ADDR", "email_addr"), ("TWICE", None)],
            {"TWICE": [14, 16]},
        ),
        # an earlier rule does not
        (
            [tr(2, "column", "convert-uppercase"), add_col(3, "twice", "$id * 2")],
            [("ID", "id"), ("NAME", "name"), ("EMAIL_ADDR", "email_addr"), ("twice", None)],
            {"twice": [14, 16]},
        ),
        # references read source columns: renamed or removed ones too (as DMS evaluates
        # expressions against the source row)
        (
            [
                tr(2, "column", "rename", "user_id", column="id"),
                tr(3, "column", "remove-column", column="name"),
                add_col(4, "twice", "$id * 2 + $name"),
            ],
            [("user_id", "id"), ("email_addr", "email_addr"), ("twice", None)],
            {"twice": [15, 18]},
        ),
        # a later remove-column removes an added column
        (
            [add_col(2, "twice", "$id * 2"), tr(3, "column", "remove-column", column="tw%")],
            [("id", "id"), ("name", "name"), ("email_addr", "email_addr")],
            {},
        ),
        # the table locator limits where a column is added
        (
            [add_col(2, "twice", "$id * 2", table="other")],
            [("id", "id"), ("name", "name"), ("email_addr", "email_addr")],
            {},
        ),
    ],
)
def test_add_column(
    rules: list[dict[str, Any]], maps: list[tuple[str, str | None]], values: dict[str, list[Any]]
) -> None:
    [mapped] = TableMappings.parse(rule_doc(*rules), ORIGIN).select([USERS])
    assert mapped.columns == tuple(ColumnMap(t, s) for t, s in maps)
    assert mapped.target.column_names == [t for t, _ in maps]
    assert mapped.source_columns() == [s for _, s in maps if s is not None]
    assert mapped.added_names == set(values)
    assert mapped.target.primary_key in (("id",), ("ID",), ("user_id",))
    batch = pa.RecordBatch.from_pydict(
        {"id": pa.array([7, 8], pa.int64()), "name": pa.array([1, 2]), "email_addr": pa.array([0, 0])}
    )
    out = mapped.project(batch)
    assert out.schema == mapped.target.arrow_schema()
    assert {name: out.column(name).to_pylist() for name in values} == values


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        (
            [add_col(2, "name", "1")],
            "mappings.json: rule 2 (t2): table public.users already has a column 'name'",
        ),
        (
            [tr(2, "column", "rename", "x", column="name"), add_col(3, "x", "1")],
            "rule 3 (t3): table public.users already has a column 'x'",
        ),
        (
            [add_col(2, "x", "1"), tr(3, "column", "rename", "id", column="x")],
            "rule 3 (t3): renaming columns of table public.users makes 'id' collide",
        ),
        (
            [add_col(2, "x", "1"), tr(3, "column", "remove-column", column="%a%"),
             tr(4, "column", "remove-column", column="id")],
            "mappings.json: table public.users keeps none of its source columns",
        ),
        ([add_col(2, "x", "$nope")], "rule 2 (t2): the expression of column 'x' names $nope"),
    ],
)  # fmt: skip
def test_add_column_errors(rules: list[dict[str, Any]], message: str) -> None:
    mappings = TableMappings.parse(rule_doc(*rules), ORIGIN)
    with pytest.raises(ConfigError, match=re.escape(message)):
        mappings.select([USERS])


def child_tables() -> list[TableSchema]:
    """A DynamoDB-like parent and its child table (keyed by the parent's key and position)."""
    parent = table("dynamodb", "Orders", "OrderId", "Total", key=("OrderId",))
    child = replace(
        table("dynamodb", "Orders_Items", "OrderId", "position", "Sku", key=("OrderId", "position")),
        parent=parent.ref,
    )
    return [parent, child]


CHILD_SELECTION = [
    ([sel(1, "dynamodb", "Orders")], ["Orders", "Orders_Items"]),
    ([sel(1, "dynamodb", "Orders"), sel(2, "dynamodb", "Orders_Items", "exclude")], ["Orders"]),
    ([sel(1, "dynamodb", "Orders"), sel(2, "%", "%Items", "exclude")], ["Orders"]),
    ([sel(1, "dynamodb", "Orders_Items")], ["Orders_Items"]),
    ([sel(1, "dynamodb", "Orders", "exclude"), sel(2, "%", "%")], ["Orders_Items"]),
]


@pytest.mark.parametrize(("rules", "expected"), CHILD_SELECTION)
def test_selecting_a_parent_selects_its_child_tables(
    rules: list[dict[str, Any]], expected: list[str]
) -> None:
    mapped = TableMappings.parse({"rules": rules}, ORIGIN).select(child_tables())
    assert sorted(m.source.ref.name for m in mapped) == expected


def test_a_parents_filter_on_a_column_its_child_lacks_is_refused_by_name() -> None:
    rule = sel(1, "dynamodb", "Orders") | {
        "filters": [
            {
                "filter-type": "source",
                "column-name": "Total",
                "filter-conditions": [{"filter-operator": "gte", "value": "5"}],
            }
        ]
    }
    with pytest.raises(ConfigError, match=r"Orders_Items is selected with its parent .*'Total'.*exclude it"):
        TableMappings.parse({"rules": [rule]}, ORIGIN).select(child_tables())


def test_a_child_table_without_its_position_is_keyed_by_its_parent_as_a_group() -> None:
    rules = [
        sel(1, "dynamodb", "Orders"),
        tr(2, "column", "remove-column", table="Orders_Items", column="position"),
    ]
    child = {
        m.source.ref.name: m for m in TableMappings.parse({"rules": rules}, ORIGIN).select(child_tables())
    }
    assert child["Orders_Items"].target.primary_key == ()  # no unique key on the target
    assert child["Orders_Items"].group_key == ("OrderId",)
    assert child["Orders"].group_key == () and child["Orders"].target.primary_key == ("OrderId",)
    kept = {
        m.source.ref.name: m for m in TableMappings.parse({"rules": rules[:1]}, ORIGIN).select(child_tables())
    }
    assert kept["Orders_Items"].group_key == ()
    assert kept["Orders_Items"].target.primary_key == ("OrderId", "position")
