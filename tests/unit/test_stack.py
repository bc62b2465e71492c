"""The stack file: what loads, what each mistake says, and that secrets stay references."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conveyor.core.errors import ConfigError, NotFoundError
from conveyor.stack import secrets
from conveyor.stack.endpoints_spec import EndpointSpec
from conveyor.stack.loader import load_stack
from conveyor.stack.model import Stack, all_tables_mapping

SECRET = "s3cr3t-Value-42"

MAPPINGS = {
    "rules": [
        {
            "rule-type": "selection",
            "rule-id": "1",
            "rule-name": "1",
            "object-locator": {"schema-name": "sales", "table-name": "%"},
            "rule-action": "include",
        }
    ]
}
DEFINITION = {"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}
PATTERN = {"source": ["aws.dms"], "detail": {"eventId": ["DMS-EVENT-0079"]}}

CONTRACT = """
endpoints:
  sales-db:
    engine: postgres
    url: postgresql://app@127.0.0.1:5432/sales
    password: ${env:SALES_DB_PASSWORD}
  warehouse:
    engine: postgres
    url: postgresql://etl@127.0.0.1:5432/dw
    password: ${file:secrets/dw-password}
  local-db:
    engine: sqlite
    path: ./data/app.sqlite
  lake:
    engine: lake
    path: ./lake
    format: parquet
    bucket_path: "raw/{date:%Y/%m/%d}"
    settings: {DatePartitionEnabled: false, AddColumnName: true}
tasks:
  sales-load:
    source: sales-db
    target: warehouse
    migration_type: full-load
    table_mappings: file://mappings.json
    settings: {FullLoadSettings: {TargetTablePrepMode: DROP_AND_CREATE}}
state_machines:
  load-customer-sales:
    definition: file://load-customer-sales.asl.json
rules:
  on-full-load-finished:
    event_pattern: file://pattern.json
    targets: [{state_machine: load-customer-sales}]
  nightly:
    schedule: cron(0 2 * * ? *)
    targets: [{state_machine: load-customer-sales, input: {}}]
lake_tables:
  sales.orders: {active: true, primary_key: [order_id], partition_key: [order_date]}
"""
CONTRACT_FILES = {
    "mappings.json": json.dumps(MAPPINGS),
    "load-customer-sales.asl.json": json.dumps(DEFINITION),
    "pattern.json": json.dumps(PATTERN),
    "secrets/dw-password": SECRET + "\n",
}

ENDPOINTS = """
endpoints:
  src: {engine: postgres, url: "postgresql://app@db/sales"}
  dst: {engine: duckdb, path: dw.duckdb}
"""


def write(folder: Path, stack: str, files: dict[str, str] | None = None, name: str = "conveyor.yaml") -> Path:
    for relative, text in (files or {}).items():
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    path = folder / name
    path.write_text(textwrap.dedent(stack))
    return path


def load_error(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_stack(path)
    assert caught.value.exit_code == 2
    return str(caught.value)


# -- stacks that load ---------------------------------------------------------------------------


def test_the_contract_example_loads(tmp_path: Path) -> None:
    stack = load_stack(write(tmp_path, CONTRACT, CONTRACT_FILES))
    assert stack.base_dir == tmp_path
    assert stack.file == tmp_path / "conveyor.yaml"
    assert stack.tasks["sales-load"].table_mappings == MAPPINGS
    assert stack.state_machines["load-customer-sales"].definition == DEFINITION
    assert stack.rules["on-full-load-finished"].event_pattern == PATTERN
    assert stack.rules["nightly"].schedule == "cron(0 2 * * ? *)"
    assert stack.rules["nightly"].targets[0].input == {}
    assert stack.endpoints["local-db"].path == str(tmp_path / "data" / "app.sqlite")
    assert stack.endpoints["lake"].path == str(tmp_path / "lake")
    assert stack.lake_tables["sales.orders"].primary_key == ["order_id"]
    assert (
        stack.tasks["sales-load"].task_settings().full_load_settings.target_table_prep_mode
        == "DROP_AND_CREATE"
    )
    assert stack.warnings == ()


Check = Callable[[Stack], object]

VALID: list[tuple[str, str, dict[str, str], Check, object]] = [
    (
        "inline-json-objects",
        ENDPOINTS
        + "tasks:\n"
        + "  t:\n"
        + "    source: src\n"
        + "    target: dst\n"
        + '    table_mappings: {"rules": [{"rule-type": "selection", "rule-id": "1", "rule-name": "all",'
        + ' "rule-action": "include", "object-locator": {"schema-name": "%", "table-name": "%"}}]}\n'
        + '    settings: \'{"FullLoadSettings": {"CommitRate": 500}}\'\n',
        {},
        lambda s: s.tasks["t"].task_settings().full_load_settings.commit_rate,
        500,
    ),
    (
        "file-settings",
        ENDPOINTS + "tasks:\n  t: {source: src, target: dst, settings: file://conf/settings.json}\n",
        {"conf/settings.json": '{"FullLoadSettings": {"TargetTablePrepMode": "DO_NOTHING"}}'},
        lambda s: s.tasks["t"].settings,
        {"FullLoadSettings": {"TargetTablePrepMode": "DO_NOTHING"}},
    ),
    (
        "defaults",
        ENDPOINTS + "tasks:\n  t: {source: src, target: dst}\n",
        {},
        lambda s: (s.tasks["t"].migration_type, s.tasks["t"].table_mappings, s.tasks["t"].settings),
        ("full-load", all_tables_mapping(), {}),
    ),
    ("empty-file", "", {}, lambda s: (s.endpoints, s.tasks), ({}, {})),
    (
        "mariadb-alias",
        "endpoints:\n  m: {engine: mariadb, url: 'mariadb://u@h/db'}\n",
        {},
        lambda s: s.endpoints["m"].engine,
        "mysql",
    ),
    (
        "engine-case",
        "endpoints:\n  p: {engine: PostgreSQL, url: 'postgres://u@h/db'}\n",
        {},
        lambda s: s.endpoints["p"].engine,
        "postgres",
    ),
    (
        "absolute-path-kept",
        "endpoints:\n  d: {engine: duckdb, path: /srv/dw.duckdb}\n",
        {},
        lambda s: s.endpoints["d"].path,
        "/srv/dw.duckdb",
    ),
    (
        "memory",
        "endpoints:\n  d: {engine: duckdb, path: ':memory:'}\n",
        {},
        lambda s: s.endpoints["d"].path,
        ":memory:",
    ),
    (
        "s3-lake",
        "endpoints:\n  l: {engine: lake, path: 's3://bucket/raw', endpoint_url: 'http://127.0.0.1:9000'}\n",
        {},
        lambda s: s.endpoints["l"].path,
        "s3://bucket/raw",
    ),
    (
        "dynamodb",
        "endpoints:\n  d: {engine: dynamodb, region: eu-west-1}\n",
        {},
        lambda s: s.endpoints["d"].region,
        "eu-west-1",
    ),
    (
        "key-as-text",
        "lake_tables:\n  sales.orders: {primary_key: order_id}\n",
        {},
        lambda s: s.lake_tables["sales.orders"].primary_key,
        ["order_id"],
    ),
    (
        "yaml-anchors-and-merge",
        "endpoints:\n  a: &pg {engine: postgres, url: 'postgres://u@h/a'}\n  b: {<<: *pg, url: 'postgres://u@h/b'}\n",
        {},
        lambda s: (s.endpoints["b"].engine, s.endpoints["b"].url),
        ("postgres", "postgres://u@h/b"),
    ),
    (
        "rate-schedule",
        "state_machines:\n  m: {definition: {StartAt: A, States: {A: {Type: Pass, End: true}}}}\n"
        "rules:\n  r: {schedule: rate(5 minutes), targets: [{state_machine: m}]}\n",
        {},
        lambda s: s.rules["r"].schedule,
        "rate(5 minutes)",
    ),
    (
        "one-time-schedule",
        "state_machines:\n  m: {definition: {StartAt: A, States: {A: {Type: Pass, End: true}}}}\n"
        "rules:\n  r: {schedule: 'at(2030-01-31T08:00:00)', timezone: Europe/Paris,"
        " start_date: '2030-01-01T00:00:00Z', action_after_completion: DELETE,"
        " targets: [{state_machine: m}]}\n",
        {},
        lambda s: (
            s.rules["r"].schedule,
            s.rules["r"].start_date.isoformat(),
            s.rules["r"].action_after_completion,
        ),
        ("at(2030-01-31T08:00:00)", "2030-01-01T00:00:00+00:00", "DELETE"),
    ),
    (
        "url-reference-in-host",
        "endpoints:\n  p: {engine: postgres, url: 'postgresql://app@${env:DB_HOST}:5432/db'}\n",
        {},
        lambda s: s.endpoints["p"].url,
        "postgresql://app@${env:DB_HOST}:5432/db",
    ),
    (
        "url-is-a-reference",
        "endpoints:\n  p: {engine: postgres, url: '${env:DATABASE_URL}'}\n",
        {},
        lambda s: s.endpoints["p"].url,
        "${env:DATABASE_URL}",
    ),
]


@pytest.mark.parametrize(
    ("stack_text", "files", "check", "expected"), [row[1:] for row in VALID], ids=[row[0] for row in VALID]
)
def test_valid_stacks(
    tmp_path: Path, stack_text: str, files: dict[str, str], check: Check, expected: object
) -> None:
    assert check(load_stack(write(tmp_path, stack_text, files))) == expected


def test_relative_paths_follow_the_stack_file_not_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    write(project, "endpoints:\n  d: {engine: sqlite, path: data/app.sqlite}\n")
    monkeypatch.chdir(tmp_path)
    stack = load_stack(Path("project/conveyor.yaml"))
    assert stack.base_dir == project
    assert stack.endpoints["d"].path == str(project / "data" / "app.sqlite")


# -- each mistake and its message ------------------------------------------------------------------

ERRORS: list[tuple[str, str, dict[str, str], list[str]]] = [
    (
        "unknown-top-level-key",
        "endpoint: {}\n",
        {},
        ["conveyor.yaml: endpoint: unknown top-level key", "did you mean 'endpoints'?"],
    ),
    (
        "unknown-engine",
        "endpoints:\n  sales-db: {engine: oracle}\n",
        {},
        [
            "conveyor.yaml: endpoints.sales-db.engine: unknown engine 'oracle' (expected one of: duckdb, "
            "dynamodb, lake, mysql, nats, postgres, sqlite)"
        ],
    ),
    (
        "url-required",
        "endpoints:\n  p: {engine: postgres}\n",
        {},
        ["endpoints.p.url: required for a postgres endpoint"],
    ),
    (
        "path-required",
        "endpoints:\n  d: {engine: duckdb}\n",
        {},
        ["endpoints.d.path: required for a duckdb endpoint"],
    ),
    (
        "key-of-another-engine",
        "endpoints:\n  p: {engine: postgres, url: 'postgresql://u@h/d', format: csv}\n",
        {},
        ["endpoints.p.format: not a key of a postgres endpoint", "engine, password, settings, url"],
    ),
    (
        "typo-in-key",
        "endpoints:\n  p: {engine: postgres, url: 'postgresql://u@h/d', passwrd: '${env:X}'}\n",
        {},
        ["endpoints.p.passwrd: unknown key", "did you mean 'password'?"],
    ),
    (
        "url-scheme",
        "endpoints:\n  m: {engine: mysql, url: 'postgresql://u@h/d'}\n",
        {},
        ["endpoints.m.url: expected a mysql URL"],
    ),
    (
        "bad-reference",
        "endpoints:\n  p: {engine: postgres, url: 'postgresql://u@h/d', password: '${vault:db}'}\n",
        {},
        ["endpoints.p.password:", "${env:NAME} or ${file:PATH}"],
    ),
    (
        "bad-format",
        "endpoints:\n  l: {engine: lake, path: lake, format: xml}\n",
        {},
        ["endpoints.l.format: unknown value 'xml' (expected one of: csv, parquet)"],
    ),
    (
        "unknown-source",
        ENDPOINTS + "tasks:\n  t: {source: sales, target: dst}\n",
        {},
        ["tasks.t.source: unknown endpoint 'sales' (declared: dst, src)"],
    ),
    (
        "not-a-target-engine",
        ENDPOINTS + "  s: {engine: sqlite, path: a.db}\ntasks:\n  t: {source: src, target: s}\n",
        {},
        [
            "tasks.t.target: endpoint 's' is a sqlite endpoint, which cannot be a target",
            "duckdb, lake, nats, postgres",
        ],
    ),
    (
        "not-a-source-engine",
        ENDPOINTS + "tasks:\n  t: {source: dst, target: src}\n",
        {},
        ["tasks.t.source: endpoint 'dst' is a duckdb endpoint, which cannot be a source"],
    ),
    (
        "migration-type",
        ENDPOINTS + "tasks:\n  t: {source: src, target: dst, migration_type: full}\n",
        {},
        ["tasks.t.migration_type: unknown value 'full'", "full-load, cdc, full-load-and-cdc", "'full-load'?"],
    ),
    (
        "missing-file",
        ENDPOINTS + "tasks:\n  t: {source: src, target: dst, table_mappings: file://maps/m.json}\n",
        {},
        ["conveyor.yaml: tasks.t.table_mappings: file://maps/m.json", "maps/m.json does not exist"],
    ),
    (
        "bad-json-file",
        ENDPOINTS + "tasks:\n  t: {source: src, target: dst, table_mappings: file://m.json}\n",
        {"m.json": '{"rules": [\n  {"rule-type": }\n]}'},
        ["conveyor.yaml: tasks.t.table_mappings: file://m.json: invalid JSON in m.json at line 2"],
    ),
    (
        "bad-settings-in-file",
        ENDPOINTS + "tasks:\n  t: {source: src, target: dst, settings: file://settings.json}\n",
        {"settings.json": '{"FullLoadSettings": {"TargetTablePrepMode": "DROP"}}'},
        [
            "settings.json: FullLoadSettings.TargetTablePrepMode: unknown value 'DROP'",
            "DROP_AND_CREATE",
            "(referenced by ",
            "conveyor.yaml: tasks.t.settings)",
        ],
    ),
    (
        "bad-settings-inline",
        ENDPOINTS
        + "tasks:\n  t: {source: src, target: dst, settings: {FullLoadSettings: {TargetTablePrepmode: X}}}\n",
        {},
        [
            "conveyor.yaml: tasks.t.settings.FullLoadSettings.TargetTablePrepmode: unknown setting",
            "'TargetTablePrepMode'?",
        ],
    ),
    (
        "mappings-without-rules",
        ENDPOINTS + "tasks:\n  t: {source: src, target: dst, table_mappings: {}}\n",
        {},
        ["tasks.t.table_mappings.rules: required"],
    ),
    (
        "not-json",
        ENDPOINTS + "tasks:\n  t: {source: src, target: dst, table_mappings: mappings.json}\n",
        {},
        ["tasks.t.table_mappings: expected a JSON object, written inline or as file://path.json"],
    ),
    (
        "definition-not-asl",
        "state_machines:\n  m: {definition: {States: {}}}\n",
        {},
        ["state_machines.m.definition.StartAt: required", "state_machines.m.definition.States: required"],
    ),
    (
        "pattern-and-schedule",
        "state_machines:\n  m: {definition: {StartAt: A, States: {A: {Type: Succeed}}}}\n"
        "rules:\n  r: {event_pattern: {source: [x]}, schedule: rate(1 day), targets: [{state_machine: m}]}\n",
        {},
        ["rules.r: set exactly one of event_pattern and schedule"],
    ),
    (
        "neither-pattern-nor-schedule",
        "state_machines:\n  m: {definition: {StartAt: A, States: {A: {Type: Succeed}}}}\n"
        "rules:\n  r: {targets: [{state_machine: m}]}\n",
        {},
        ["rules.r: set exactly one of event_pattern and schedule"],
    ),
    (
        "unknown-state-machine",
        "state_machines:\n  load: {definition: {StartAt: A, States: {A: {Type: Succeed}}}}\n"
        "rules:\n  r: {schedule: rate(1 day), targets: [{state_machine: laod}]}\n",
        {},
        [
            "rules.r.targets.0.state_machine: unknown state machine 'laod' (declared: load)",
            "did you mean 'load'?",
        ],
    ),
    (
        "bad-cron",
        "rules:\n  r: {schedule: cron(0 2 * *), targets: [{state_machine: m}]}\n",
        {},
        ["rules.r.schedule: cron(...) takes 6 fields"],
    ),
    (
        "bad-one-time-schedule",
        "rules:\n  r: {schedule: 'at(2030-02-30T08:00:00)', targets: [{state_machine: m}]}\n",
        {},
        ["rules.r: at(2030-02-30T08:00:00): not a date and time: day is out of range for month"],
    ),
    (
        "naive-start-date",
        "rules:\n  r: {schedule: rate(1 day), start_date: '2030-01-01T00:00:00',"
        " targets: [{state_machine: m}]}\n",
        {},
        ["rules.r.start_date: give the time zone, e.g. 2027-01-31T08:00:00Z"],
    ),
    (
        "dates-on-an-event-rule",
        "rules:\n  r: {event_pattern: {source: [x]}, end_date: '2030-01-01T00:00:00Z',"
        " targets: [{state_machine: m}]}\n",
        {},
        ["rules.r: start_date, end_date and action_after_completion are for schedules"],
    ),
    (
        "lake-table-name",
        "lake_tables:\n  orders: {}\n",
        {},
        ["lake_tables.orders: a lake table is named schema.table"],
    ),
    (
        "lake-table-endpoint",
        ENDPOINTS + "lake_tables:\n  sales.orders: {endpoint: dst}\n",
        {},
        ["lake_tables.sales.orders.endpoint: endpoint 'dst' is a duckdb endpoint, not a lake"],
    ),
    (
        "bad-name",
        "endpoints:\n  'bad name!': {engine: duckdb, path: x}\n",
        {},
        ["endpoints.bad name!: a name has"],
    ),
    ("number-name", "endpoints:\n  1: {engine: duckdb, path: x}\n", {}, ["endpoints.1: a name must be text"]),
    ("section-not-mapping", "tasks: [a, b]\n", {}, ["conveyor.yaml: tasks: expected a mapping of names"]),
    ("top-level-list", "- a\n- b\n", {}, ["conveyor.yaml: the top level must be a mapping"]),
    (
        "yaml-syntax",
        "endpoints:\n  p: {engine: postgres\n    url: x\n",
        {},
        ["conveyor.yaml:3:8: invalid YAML"],
    ),
    (
        "duplicate-key",
        "endpoints:\n  p: {engine: duckdb, path: a}\n  p: {engine: duckdb, path: b}\n",
        {},
        ["conveyor.yaml:3:3: invalid YAML: duplicate key 'p' (first given on line 2)"],
    ),
]


@pytest.mark.parametrize(
    ("stack_text", "files", "fragments"), [row[1:] for row in ERRORS], ids=[row[0] for row in ERRORS]
)
def test_each_mistake_names_file_key_and_problem(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    stack_text: str,
    files: dict[str, str],
    fragments: list[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    message = load_error(write(tmp_path, stack_text, files).relative_to(tmp_path))
    for fragment in fragments:
        assert fragment in message, message


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    message = load_error(
        write(
            tmp_path,
            """
            endpoints:
              a: {engine: oracle}
              b: {engine: postgres}
            tasks:
              t: {source: nowhere, target: b, migration_type: sometimes}
            bogus: 1
            """,
        )
    )
    lines = message.splitlines()
    assert len(lines) == 5, message
    assert all(line.startswith(f"{tmp_path / 'conveyor.yaml'}: ") for line in lines)
    for key in ("bogus", "endpoints.a.engine", "endpoints.b.url", "tasks.t.migration_type", "tasks.t.source"):
        assert any(f": {key}: " in line for line in lines), key


def test_a_missing_stack_file(tmp_path: Path) -> None:
    assert "no such stack file" in load_error(tmp_path / "absent.yaml")


# -- secrets ---------------------------------------------------------------------------------------

SECRET_LEAKS: list[tuple[str, str]] = [
    ("url-password", f"endpoints:\n  p: {{engine: postgres, url: 'postgresql://u:{SECRET}@h/db'}}\n"),
    ("yaml-error-on-secret-line", f"endpoints:\n  p: {{engine: postgres, password: {SECRET}: x}}\n"),
    (
        "malformed-reference",
        f"endpoints:\n  p: {{engine: postgres, url: 'postgres://u@h/d', password: '${{{SECRET}'}}\n",
    ),
    (
        "password-not-text",
        "endpoints:\n  p: {engine: postgres, url: 'postgres://u@h/d', password: [s3cr3t-Value-42]}\n",
    ),
]


@pytest.mark.parametrize("stack_text", [row[1] for row in SECRET_LEAKS], ids=[row[0] for row in SECRET_LEAKS])
def test_messages_never_show_a_secret(tmp_path: Path, stack_text: str) -> None:
    message = load_error(write(tmp_path, stack_text))
    assert SECRET not in message
    assert "conveyor.yaml" in message


def test_a_url_with_a_password_suggests_a_reference(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, SECRET_LEAKS[0][1]))
    assert "endpoints.p.url: the URL contains a password" in message
    assert "password: ${env:" in message
    assert SECRET not in message


def test_a_plain_password_loads_with_a_warning(tmp_path: Path) -> None:
    stack = load_stack(
        write(
            tmp_path, f"endpoints:\n  p: {{engine: postgres, url: 'postgres://u@h/d', password: {SECRET}}}\n"
        )
    )
    (warning,) = stack.warnings
    assert "endpoints.p.password: plain-text password" in warning
    assert "${env:NAME}" in warning
    assert SECRET not in warning
    assert stack.endpoints["p"].redacted()["password"] == "***"
    assert SECRET not in repr(stack.endpoints["p"])
    assert "warnings" not in stack.to_store_dict()


def test_secrets_stay_references_in_every_dump(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SALES_DB_PASSWORD", SECRET)
    stack = load_stack(write(tmp_path, CONTRACT, CONTRACT_FILES))
    spec = stack.endpoints["sales-db"]
    assert spec.password == "${env:SALES_DB_PASSWORD}"
    assert spec.redacted()["password"] == "${env:SALES_DB_PASSWORD}"
    assert stack.endpoint_config("sales-db").password == SECRET  # resolved only here
    dumps = [
        json.dumps(stack.to_store_dict()),
        json.dumps(spec.model_dump(mode="json")),
        json.dumps(stack.endpoints["warehouse"].redacted()),
        repr(stack),
        repr(stack.endpoint_config("warehouse")),
    ]
    for dump in dumps:
        assert SECRET not in dump
    assert "${file:secrets/dw-password}" in dumps[0]


def test_env_and_file_secrets_resolve_at_connect_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = load_stack(write(tmp_path, CONTRACT, CONTRACT_FILES))
    monkeypatch.setenv("SALES_DB_PASSWORD", "from-env")
    config = stack.endpoint_config("sales-db")
    assert (config.name, config.engine, config.url) == (
        "sales-db",
        "postgres",
        "postgresql://app@127.0.0.1:5432/sales",
    )
    assert config.password == "from-env"
    assert stack.endpoint_config("warehouse").password == SECRET  # trailing newline dropped
    lake = stack.endpoint_config("lake")
    assert lake.path == str(tmp_path / "lake")
    assert lake.options == {
        "settings": {"DatePartitionEnabled": False, "AddColumnName": True},
        "bucket_path": "raw/{date:%Y/%m/%d}",
        "format": "parquet",
    }


def test_a_lake_endpoint_declares_its_curated_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CURATED_ROOT", "tables")
    stack = load_stack(
        write(
            tmp_path,
            "endpoints:\n"
            "  l: {engine: lake, path: lake, curated_path: 'curated/${env:CURATED_ROOT}'}\n"
            "  d: {engine: lake, path: lake}\n",
        )
    )
    assert stack.endpoints["l"].curated_path == "curated/${env:CURATED_ROOT}"  # kept as written
    config = stack.endpoint_config("l")
    assert config.options["curated_path"] == "curated/tables"  # relative to the lake's path, resolved later
    assert "curated_path" not in stack.endpoint_config("d").options
    error = load_error(write(tmp_path, "endpoints:\n  d: {engine: duckdb, path: a.db, curated_path: c}\n"))
    assert "endpoints.d.curated_path: not a key of a duckdb endpoint" in error


def test_an_unset_variable_or_missing_file_names_the_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = load_stack(
        write(tmp_path, CONTRACT, {k: v for k, v in CONTRACT_FILES.items() if "secrets" not in k})
    )
    monkeypatch.delenv("SALES_DB_PASSWORD", raising=False)
    with pytest.raises(
        ConfigError, match=r"endpoints.sales-db.password: \$\{env:SALES_DB_PASSWORD\}: .*not set"
    ):
        stack.endpoint_config("sales-db")
    with pytest.raises(ConfigError, match=r"endpoints.warehouse.password: \$\{file:secrets/dw-password\}: "):
        stack.endpoint_config("warehouse")
    with pytest.raises(NotFoundError, match="did you mean 'lake'"):
        stack.endpoint_config("lakes")


def test_a_password_inside_a_resolved_url_moves_to_the_password_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = load_stack(write(tmp_path, "endpoints:\n  p: {engine: postgres, url: '${env:DATABASE_URL}'}\n"))
    monkeypatch.setenv("DATABASE_URL", f"postgresql://app:{SECRET}@db:5432/sales")
    config = stack.endpoint_config("p")
    assert config.url == "postgresql://app@db:5432/sales"
    assert config.password == SECRET
    assert SECRET not in repr(config)


RESOLVE: list[tuple[str, str, dict[str, str], dict[str, str], str]] = [
    ("plain", "no reference", {}, {}, "no reference"),
    ("env", "${env:PW}", {"PW": "a"}, {}, "a"),
    ("env-empty", "${env:PW}", {"PW": ""}, {}, ""),
    ("file", "${file:pw.txt}", {}, {"pw.txt": "b\n"}, "b"),
    ("file-crlf", "${file:pw.txt}", {}, {"pw.txt": "b\r\n"}, "b"),
    ("file-subfolder", "${file:s/pw}", {}, {"s/pw": "c"}, "c"),
    (
        "interpolated",
        "postgresql://u@${env:HOST}:${env:PORT}/d",
        {"HOST": "h", "PORT": "5"},
        {},
        "postgresql://u@h:5/d",
    ),
]


@pytest.mark.parametrize(
    ("ref", "given", "expected"),
    [(ref, (env, files), expected) for _, ref, env, files, expected in RESOLVE],
    ids=[row[0] for row in RESOLVE],
)
def test_resolve(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    ref: str,
    given: tuple[dict[str, str], dict[str, str]],
    expected: str,
) -> None:
    env, files = given
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    write(tmp_path, "", files)
    assert secrets.resolve(ref, tmp_path) == expected


@pytest.mark.parametrize(
    ("ref", "fragment"),
    [
        (
            "${env:NOT_SET_ANYWHERE}",
            "${env:NOT_SET_ANYWHERE}: environment variable NOT_SET_ANYWHERE is not set",
        ),
        ("${file:absent.txt}", "${file:absent.txt}: secret file"),
        ("${file:.}", "is a folder"),
        ("${env:1BAD}", "not an environment variable name"),
        ("${vault:x}", "${env:NAME} or ${file:PATH}"),
    ],
)
def test_resolve_failures_name_the_reference(tmp_path: Path, ref: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        secrets.resolve(ref, tmp_path)
    assert fragment in str(caught.value)


def test_a_secret_file_is_read_but_never_echoed(tmp_path: Path) -> None:
    (tmp_path / "pw").write_bytes(b"\xff\xfe" + SECRET.encode())
    with pytest.raises(ConfigError) as caught:
        secrets.resolve("${file:pw}", tmp_path)
    assert "not UTF-8" in str(caught.value)
    assert SECRET not in str(caught.value)


# -- the metadata store ----------------------------------------------------------------------------


def test_the_store_round_trip_keeps_references_and_base_dir(tmp_path: Path) -> None:
    stack = load_stack(write(tmp_path, CONTRACT, CONTRACT_FILES))
    stored = json.loads(json.dumps(stack.to_store_dict()))
    assert stored["base_dir"] == str(tmp_path)
    assert stored["endpoints"]["sales-db"]["password"] == "${env:SALES_DB_PASSWORD}"
    assert stored["tasks"]["sales-load"]["table_mappings"] == MAPPINGS  # file:// read in
    again = Stack.from_store_dict(stored)
    assert again == stack.model_copy(update={"warnings": ()})


def test_the_store_checks_references_too(tmp_path: Path) -> None:
    stored: dict[str, Any] = load_stack(write(tmp_path, CONTRACT, CONTRACT_FILES)).to_store_dict()
    del stored["endpoints"]["warehouse"]
    with pytest.raises(
        ConfigError, match=r"^metadata store: tasks.sales-load.target: unknown endpoint 'warehouse'"
    ):
        Stack.from_store_dict(stored)


def test_an_endpoint_spec_alone_validates_like_in_a_stack(tmp_path: Path) -> None:
    spec = EndpointSpec.model_validate({"engine": "sqlite", "path": "a.db"}, context={"base_dir": tmp_path})
    assert spec.path == str(tmp_path / "a.db")
    assert spec.to_config("local", tmp_path).path == str(tmp_path / "a.db")
