"""`conveyor executions ...`, `state-machines ...`, `rules ...`, `statements ...`,
`events put` and `conveyor serve`."""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from conveyor.api.security import DEFAULT_MAX_BODY_BYTES, serve_token
from conveyor.aws.sigv4 import KeyPair
from conveyor.cli.app import app
from conveyor.cli.output import opened_conveyor, print_json
from conveyor.cli.tasks import events_app
from conveyor.core.errors import ConfigError
from conveyor.core.log_format import configure_logging
from conveyor.orchestration.scheduler import MISSED_POLICIES
from conveyor.orchestration.service import Service
from conveyor.service.models import to_json
from conveyor.store.store import DEFAULT_HOME, Store

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
executions_app = typer.Typer(no_args_is_help=True, help="State machine executions.")
machines_app = typer.Typer(no_args_is_help=True, help="State machines (Amazon States Language).")
rules_app = typer.Typer(no_args_is_help=True, help="Event rules and schedules.")
statements_app = typer.Typer(no_args_is_help=True, help="Asynchronous SQL on a target endpoint.")
app.add_typer(executions_app, name="executions")
app.add_typer(machines_app, name="state-machines")
app.add_typer(rules_app, name="rules")
app.add_typer(statements_app, name="statements")
_out = Console()


def _emit(data: BaseModel, as_json: bool, table: Table | None = None, text: str | None = None) -> None:
    if as_json:
        print_json(data)
    elif table is not None:
        _out.print(table)
    elif text is not None:
        _out.print(text, markup=False, highlight=False)


def _json_arg(text: str | None, what: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{what}: not valid JSON: {exc.msg} at column {exc.colno}") from None


def _start(name: str, input_json: str | None, execution_name: str | None, wait: bool, as_json: bool) -> None:
    execution_input = _json_arg(input_json, "--input")
    with opened_conveyor() as conveyor:
        started = conveyor.start_execution(name, execution_input, execution_name, wait)
    _emit(started, as_json, text=_execution_text(to_json(started)))
    if wait and started.status != "SUCCEEDED":
        raise typer.Exit(1)


def _execution_text(d: dict[str, Any]) -> str:
    lines = [f"execution {d['executionId']} ({d['stateMachineName']}): {d['status']}"]
    for key in ("currentState", "error", "cause", "output", "note"):
        if d.get(key):
            lines.append(f"  {key}: {d[key]}")
    return "\n".join(lines)


# --- executions ------------------------------------------------------------------------------


@executions_app.command("start")
def executions_start(
    state_machine: str,
    input_json: Annotated[str | None, typer.Option("--input", help="The input, as JSON.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="A name unique for the state machine.")] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Run it here until it ends; exit 1 unless it succeeded.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Start an execution of a state machine."""
    _start(state_machine, input_json, name, wait, as_json)


@executions_app.command("list")
def executions_list(
    state_machine: Annotated[str | None, typer.Option("--state-machine")] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Executions, newest first."""
    with opened_conveyor() as conveyor:
        rows = conveyor.list_executions(state_machine, status)
    table = Table("id", "state machine", "status", "started", "stopped")
    for r in to_json(rows):
        table.add_row(
            r["executionId"], r["stateMachineName"], r["status"], r["startDate"], r["stopDate"] or ""
        )
    _emit(rows, as_json, table)


@executions_app.command("describe")
def executions_describe(execution: str, as_json: JsonOption = False) -> None:
    """Status, input, output, error of one execution (id, ARN or name)."""
    with opened_conveyor() as conveyor:
        described = conveyor.describe_execution(execution)
    _emit(described, as_json, text=_execution_text(to_json(described)))


@executions_app.command("history")
def executions_history(execution: str, as_json: JsonOption = False) -> None:
    """Every event of an execution: states entered and exited with inputs and outputs."""
    with opened_conveyor() as conveyor:
        history = conveyor.get_execution_history(execution)
    table = Table("id", "time", "type", "state / resource", "detail")
    for e in history.events:
        details: dict[str, Any] = next((v for k, v in e.items() if k.endswith("EventDetails")), {})
        where = details.get("name") or details.get("resource") or ""
        shown = details.get("input") or details.get("output") or details.get("error") or ""
        if details.get("cause"):
            shown = f"{shown}: {details['cause']}"
        table.add_row(str(e["id"]), e["timestamp"], e["type"], where, str(shown)[:120])
    _emit(history, as_json, table)


@executions_app.command("stop")
def executions_stop(
    execution: str,
    error: Annotated[str | None, typer.Option("--error")] = None,
    cause: Annotated[str | None, typer.Option("--cause")] = None,
    as_json: JsonOption = False,
) -> None:
    """Abort a running execution."""
    with opened_conveyor() as conveyor:
        stopped = conveyor.stop_execution(execution, error, cause)
    _emit(stopped, as_json, text=f"stopped {stopped.executionArn}")


# --- state machines ----------------------------------------------------------------------------


@machines_app.command("list")
def machines_list(as_json: JsonOption = False) -> None:
    """Every applied state machine, validated against the integrations Conveyor has."""
    with opened_conveyor() as conveyor:
        rows = conveyor.list_state_machines()
    table = Table("state machine", "valid", "problem")
    for r in to_json(rows):
        table.add_row(r["name"], "yes" if r["valid"] else "no", r.get("error") or "; ".join(r["warnings"]))
    _emit(rows, as_json, table)
    if not all(r.valid for r in rows.root):
        raise typer.Exit(1)


@machines_app.command("start")
def machines_start(
    name: str,
    input_json: Annotated[str | None, typer.Option("--input", help="The input, as JSON.")] = None,
    execution_name: Annotated[str | None, typer.Option("--name")] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Run it here until it ends; exit 1 unless it succeeded.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Start an execution (same as `conveyor executions start`)."""
    _start(name, input_json, execution_name, wait, as_json)


# --- rules ---------------------------------------------------------------------------------------


@rules_app.command("list")
def rules_list(as_json: JsonOption = False) -> None:
    """Rules with their pattern or schedule (and last / next fire)."""
    with opened_conveyor() as conveyor:
        rows = conveyor.list_rules()
    table = Table("rule", "state", "trigger", "targets", "next fire")
    for r in to_json(rows):
        trigger = r.get("ScheduleExpression") or json.dumps(r.get("EventPattern"))
        targets = ", ".join(t["state_machine"] for t in r["Targets"])
        table.add_row(r["Name"], r["State"], trigger, targets, r.get("NextFire") or "")
    _emit(rows, as_json, table)


# --- events put -----------------------------------------------------------------------------------


@events_app.command("put")
def events_put(
    file: Annotated[Path | None, typer.Argument(help="An event JSON file (or use the options).")] = None,
    source: Annotated[str | None, typer.Option("--source")] = None,
    detail_type: Annotated[str | None, typer.Option("--detail-type")] = None,
    detail: Annotated[str | None, typer.Option("--detail", help="The detail object, as JSON.")] = None,
    event_file: Annotated[Path | None, typer.Option("--file", help="An event JSON file.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Put an event on the bus; the rules it matches start executions (run by `conveyor serve`)."""
    path = file or event_file
    if path is not None:
        event = _json_arg(path.read_text(encoding="utf-8"), str(path))
        if not isinstance(event, dict):
            raise ConfigError(f"{path}: an event is a JSON object")
    else:
        event = {"source": source, "detail-type": detail_type, "detail": _json_arg(detail, "--detail") or {}}
    with opened_conveyor() as conveyor:
        answer = conveyor.put_event(event)
    text = f"event {answer.EventId}: rules matched: {', '.join(answer.MatchedRules) or '-'}"
    for arn in answer.Executions:
        text += f"\n  started {arn}"
    for failure in answer.Failures:
        text += f"\n  failed {failure['Rule']}: {failure['ErrorMessage']}"
    _emit(answer, as_json, text=text)
    if answer.Failures:
        raise typer.Exit(1)


# --- statements -------------------------------------------------------------------------------------


@statements_app.command("execute")
def statements_execute(
    endpoint: str,
    sql: str,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for it.")] = 3600.0,
    as_json: JsonOption = False,
) -> None:
    """Run SQL on an endpoint and wait for it (CALL of procedures included)."""
    with opened_conveyor() as conveyor:
        described = conveyor.execute_statement(endpoint, sql, wait=True, timeout=timeout)
    shown = to_json(described)
    _emit(described, as_json, text=f"{shown['Id']}: {shown['Status']} {shown.get('Error') or ''}")
    if shown["Status"] != "FINISHED":
        raise typer.Exit(1)


@statements_app.command("describe")
def statements_describe(statement_id: str, as_json: JsonOption = False) -> None:
    with opened_conveyor() as conveyor:
        described = conveyor.describe_statement(statement_id)
    _emit(described, as_json, text=json.dumps(to_json(described), indent=2))


@statements_app.command("result")
def statements_result(
    statement_id: str,
    next_token: Annotated[str | None, typer.Option("--next-token")] = None,
    as_json: JsonOption = False,
) -> None:
    with opened_conveyor() as conveyor:
        page = conveyor.get_statement_result(statement_id, next_token)
    table = Table(*[c["name"] for c in page.ColumnMetadata])
    for record in page.Records:
        table.add_row(*["NULL" if f.get("isNull") else str(next(iter(f.values()))) for f in record])
    _emit(page, as_json, table)


@statements_app.command("cancel")
def statements_cancel(statement_id: str, as_json: JsonOption = False) -> None:
    with opened_conveyor() as conveyor:
        done = conveyor.cancel_statement(statement_id)
    _emit(done, as_json, text="cancelled" if done.Status else "not cancelled")


@statements_app.command("list")
def statements_list(as_json: JsonOption = False) -> None:
    with opened_conveyor() as conveyor:
        rows = conveyor.list_statements()
    table = Table("id", "status", "endpoint", "created", "sql")
    for r in to_json(rows)["Statements"]:
        table.add_row(r["Id"], r["Status"], r["ClusterIdentifier"], r["CreatedAt"], r["QueryString"][:60])
    _emit(rows, as_json, table)


# --- serve --------------------------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def own_url(host: str, port: int) -> str:
    """How a process on this machine reaches the server bound to ``host``."""
    reachable = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://[{reachable}]:{port}" if ":" in reachable else f"http://{reachable}:{port}"


def aws_keys() -> KeyPair | None:
    """The key pair AWS-protocol requests must be signed with, from the environment."""
    key_id = os.environ.get("CONVEYOR_AWS_ACCESS_KEY_ID", "").strip()
    secret = os.environ.get("CONVEYOR_AWS_SECRET_ACCESS_KEY", "").strip()
    if bool(key_id) != bool(secret):
        raise ConfigError(
            "set both CONVEYOR_AWS_ACCESS_KEY_ID and CONVEYOR_AWS_SECRET_ACCESS_KEY, or neither"
        )
    return KeyPair(key_id, secret) if key_id else None


@app.command()
def serve(
    host: Annotated[
        str, typer.Option("--host", help="Address to bind; loopback unless a token is set.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8080,
    token_env: Annotated[
        str,
        typer.Option(
            "--token-env",
            help="Environment variable holding the API token (else one is generated under CONVEYOR_HOME).",
        ),
    ] = "CONVEYOR_API_TOKEN",
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="Serve without a token; refused off loopback.")
    ] = False,
    max_body_bytes: Annotated[
        int, typer.Option("--max-body-bytes", min=1, help="Largest request body accepted (413 beyond).")
    ] = DEFAULT_MAX_BODY_BYTES,
    missed_fires: Annotated[
        str, typer.Option("--missed-fires", help="Schedules missed while stopped: once | all | skip.")
    ] = "once",
) -> None:
    """Run the scheduler, the event rules, executions and the REST API in one process."""
    from conveyor.core.extras import needs_extra

    with needs_extra("conveyor serve", "server"):
        import botocore  # type: ignore[import-untyped]  # noqa: F401  (the AWS APIs' signature check)
        import uvicorn
        from uvicorn.config import LOGGING_CONFIG

        from conveyor.api.app import create_app

    if missed_fires not in MISSED_POLICIES:
        raise ConfigError(f"--missed-fires must be one of {', '.join(MISSED_POLICIES)}")
    fmt = configure_logging()
    token: str | None = None
    if no_auth:
        if not is_loopback(host):
            raise ConfigError(
                f"refusing to bind {host} with --no-auth: outside loopback the API needs a token"
            )
    else:
        if os.environ.get(token_env) is None and not is_loopback(host):
            raise ConfigError(
                f"refusing to bind {host}: outside loopback the API needs a token you chose; set "
                f"{token_env} (or --token-env NAME) to a secret value"
            )
        home = Path(os.environ.get("CONVEYOR_HOME", DEFAULT_HOME))
        token = serve_token(home, os.environ.get(token_env), token_env)
        shown = "localhost" if is_loopback(host) else host
        login = f"conveyor serve: http://{shown}:{port}/?token={token}"
        if fmt == "json":
            logging.getLogger(__name__).info("%s", login)
        else:
            print(login, file=sys.stderr, flush=True)
    store = Store.open()
    service = Service(store, missed=missed_fires)  # type: ignore[arg-type]
    # uvicorn handles SIGTERM/SIGINT while it serves, then re-raises them to the handlers
    # it found: make those record the request, so the shutdown below runs to its end.
    requested: list[int] = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda number, _frame: requested.append(number))
    service.executions.aws_endpoint = own_url(host, port)
    service.start()
    try:
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(service, token, max_body_bytes, aws_keys()),
                host=host,
                port=port,
                log_level="info",
                # In JSON, uvicorn's own records go through the root logger's formatter.
                log_config=None if fmt == "json" else LOGGING_CONFIG,
            )
        )
        server.run()  # returns on SIGTERM / SIGINT
    finally:
        summary = service.stop()
        logging.getLogger(__name__).info("stopped: %s", summary)
        store.close()
