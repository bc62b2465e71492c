"""The Task resources a state machine may name, acting on Conveyor's own objects.

* ``arn:aws:states:::aws-sdk:redshiftdata:executeStatement | describeStatement |
  getStatementResult | cancelStatement`` run on the statement service;
  ``ClusterIdentifier`` (or ``WorkgroupName``) names a Conveyor endpoint; ``Database``,
  ``DbUser`` and ``SecretArn`` are accepted and kept, the endpoint's URL says where to
  connect.
* ``arn:aws:states:::aws-sdk:databasemigration:modifyEndpoint | describeConnections |
  testConnection | startReplicationTask | stopReplicationTask | describeReplicationTasks
  | describeEndpoints`` act on the applied stack's endpoints and tasks, named by ARN
  (``arn:aws:dms:local:000000000000:endpoint:NAME`` / ``...:task:NAME``) or by name.
* ``arn:aws:states:::lambda:invoke`` runs a function the stack file declares under
  ``functions:`` (named, or by its ARN's last part) as written, in a child process whose
  AWS SDK calls reach ``conveyor serve``; or calls the Python function ``FunctionName`` =
  ``module:function`` with the ``Payload`` (and a context dict when it takes two
  arguments, as a Lambda handler does).
* ``arn:aws:states:::states:startExecution`` (``.sync``, ``.sync:2``) starts another
  state machine of the stack.
* ``arn:aws:states:::glue:startJobRun`` (``.sync``) runs the lake curation job
  (integrations_glue.py).
* ``arn:aws:states:::s3:listObjectsV2`` / ``s3:getObject`` read a Distributed Map's
  items from a lake endpoint (integrations_s3.py).

Answers have the AWS APIs' shapes (PascalCase keys), so definitions written for AWS
(``$.Id``, ``$.Status``, ``$.Connections[0].Status``) work as written. Failures raise
the errors Step Functions reports for those services (``RedshiftData.ValidationException``,
``DatabaseMigration.ResourceNotFoundFault``, ...), which Retry and Catch can name.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit, urlunsplit

from conveyor.core.arns import ACCOUNT, REGION
from conveyor.core.errors import ConfigError, ConveyorError, NotFoundError
from conveyor.events.lifecycle import EventSink, task_arn
from conveyor.orchestration.asl.errors import TaskError
from conveyor.orchestration.asl.integrations import Integrations, TaskContext, TaskHandler
from conveyor.orchestration.integrations_glue import START_JOB_RUN, JobRuns, start_job_run
from conveyor.orchestration.integrations_s3 import register_s3
from conveyor.orchestration.lambda_runtime import FunctionFailed, Invocation, invoke
from conveyor.orchestration.statements import StackProvider, Statements
from conveyor.stack.endpoints_spec import TARGET_ENGINES
from conveyor.stack.model import Stack
from conveyor.stack.modify import modify_endpoint
from conveyor.store.store import Store

SDK = "arn:aws:states:::aws-sdk:"
REPLICATION_INSTANCE = "conveyor"
REPLICATION_INSTANCE_ARN = f"arn:aws:dms:{REGION}:{ACCOUNT}:rep:{REPLICATION_INSTANCE}"
START_TYPES = {"start-replication": "start", "resume-processing": "resume", "reload-target": "reload"}


class IntegrationHost(Protocol):
    """What the integrations use of the :class:`~conveyor.orchestration.executions.Executions`
    that builds them (a protocol: this module does not import that one). ``events`` takes
    the lifecycle events of the replication tasks they start, stop or describe."""

    @property
    def store(self) -> Store: ...

    @property
    def stack(self) -> StackProvider: ...

    @property
    def statements(self) -> Statements: ...

    @property
    def events(self) -> EventSink: ...

    @property
    def started_tasks(self) -> set[str]: ...

    @property
    def aws_endpoint(self) -> str | None: ...

    def start(
        self,
        state_machine: str,
        execution_input: Any = None,
        *,
        name: str | None = None,
        run: Literal["thread", "inline", "none"] = "none",
    ) -> dict[str, Any]: ...


ENGINE_NAMES = {"lake": "s3", "postgres": "postgres", "mysql": "mysql", "sqlite": "sqlite"}


def endpoint_arn(name: str) -> str:
    return f"arn:aws:dms:{REGION}:{ACCOUNT}:endpoint:{name}"


def _name(ref: Any, what: str) -> str:
    """A name from a Conveyor ARN (its last ``:`` part) or the name itself."""
    if not isinstance(ref, str) or not ref:
        raise ConfigError(f"{what}: expected an ARN or a name")
    for marker in (":endpoint:", ":task:", ":cluster:", ":workgroup/", ":stateMachine:"):
        if marker in ref:
            return ref.split(marker, 1)[1]
    return ref


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _params(parameters: Any) -> dict[str, Any]:
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise TaskError("States.Runtime", "Parameters must be a JSON object")
    return parameters


def _service_errors(service: str, handler: Callable[[dict[str, Any]], Any]) -> TaskHandler:
    """Conveyor's errors as the service's: ``Service.ResourceNotFound...``, ``Service.Validation...``."""
    not_found = "ResourceNotFoundFault" if service == "DatabaseMigration" else "ResourceNotFoundException"
    invalid = "InvalidParameterValueException" if service == "DatabaseMigration" else "ValidationException"

    def call(parameters: Any, context: TaskContext) -> Any:
        try:
            return handler(_params(parameters))
        except TaskError:
            raise
        except NotFoundError as exc:
            raise TaskError(f"{service}.{not_found}", str(exc)) from None
        except ConfigError as exc:
            raise TaskError(f"{service}.{invalid}", str(exc)) from None
        except ConveyorError as exc:
            name = (
                "InvalidResourceStateFault" if service == "DatabaseMigration" else "ExecuteStatementException"
            )
            raise TaskError(f"{service}.{name}", str(exc)) from None

    return call


# --- the Redshift Data API on the statement service ------------------------------------


class RedshiftData:
    def __init__(self, executions: IntegrationHost) -> None:
        self.statements = executions.statements

    def execute_statement(self, p: dict[str, Any]) -> dict[str, Any]:
        endpoint = p.get("ClusterIdentifier") or p.get("WorkgroupName")
        if not endpoint:
            raise ConfigError(
                "executeStatement: give ClusterIdentifier or WorkgroupName (a Conveyor endpoint)"
            )
        sql = p.get("Sql")
        if not isinstance(sql, str):
            raise ConfigError("executeStatement: Sql is required")
        statement_id = self.statements.execute(
            _name(endpoint, "ClusterIdentifier"),
            sql,
            p.get("Database"),
            name=p.get("StatementName"),
            parameters=p.get("Parameters"),
        )
        answer = {"Id": statement_id, "CreatedAt": _now(), "Database": p.get("Database")}
        for key in ("ClusterIdentifier", "WorkgroupName", "DbUser", "SecretArn"):
            if p.get(key) is not None:
                answer[key] = p[key]
        return answer

    def describe_statement(self, p: dict[str, Any]) -> dict[str, Any]:
        return self.statements.describe(self._id(p))

    def get_statement_result(self, p: dict[str, Any]) -> dict[str, Any]:
        return self.statements.result(self._id(p), p.get("NextToken"))

    def cancel_statement(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"Status": self.statements.cancel(self._id(p))}

    @staticmethod
    def _id(p: dict[str, Any]) -> str:
        statement_id = p.get("Id")
        if not isinstance(statement_id, str):
            raise ConfigError("Id is required: the statement's Id from executeStatement")
        return statement_id


# --- the migration service's API on endpoints and tasks ------------------------------------


class DatabaseMigration:
    def __init__(self, executions: IntegrationHost) -> None:
        self.executions = executions
        self.store = executions.store

    def _stack(self) -> Stack:
        return self.executions.stack()

    def _endpoint_name(self, stack: Stack, ref: Any) -> str:
        name = _name(ref, "EndpointArn")
        if name not in stack.endpoints:
            known = ", ".join(sorted(stack.endpoints)) or "-"
            raise NotFoundError(f"no endpoint {name!r} (endpoints: {known})")
        return name

    def _task_name(self, stack: Stack, ref: Any) -> str:
        name = _name(ref, "ReplicationTaskArn")
        if name not in stack.tasks:
            raise NotFoundError(
                f"no replication task {name!r} (tasks: {', '.join(sorted(stack.tasks)) or '-'})"
            )
        return name

    def endpoint_document(self, stack: Stack, name: str) -> dict[str, Any]:
        spec = stack.endpoints[name]
        is_target = any(t.target == name for t in stack.tasks.values()) or (
            spec.engine in TARGET_ENGINES and not any(t.source == name for t in stack.tasks.values())
        )
        doc: dict[str, Any] = {
            "EndpointIdentifier": name,
            "EndpointArn": endpoint_arn(name),
            "EndpointType": "TARGET" if is_target else "SOURCE",
            "EngineName": ENGINE_NAMES.get(spec.engine, spec.engine),
            "Status": "active",
        }
        if spec.url:
            parts = urlsplit(spec.url)
            doc |= {
                "ServerName": parts.hostname,
                "Port": parts.port,
                "Username": parts.username,
                "DatabaseName": parts.path.lstrip("/") or None,
            }
        if spec.engine == "lake":
            settings = dict(spec.settings)
            if spec.bucket_path is not None:
                settings.setdefault("BucketFolder", spec.bucket_path)
            doc["S3Settings"] = settings
        return {k: v for k, v in doc.items() if v is not None}

    # endpoints
    def describe_endpoints(self, p: dict[str, Any]) -> dict[str, Any]:
        stack = self._stack()
        wanted = _filter_values(p, ("endpoint-arn", "endpoint-id"))
        names = sorted(stack.endpoints)
        if wanted is not None:
            names = [n for n in names if n in {_name(w, "Values") for w in wanted}]
        return {"Endpoints": [self.endpoint_document(stack, n) for n in names]}

    def modify_endpoint(self, p: dict[str, Any]) -> dict[str, Any]:
        """Change the endpoint in the applied stack (kept until the next ``conveyor apply``
        of a file that declares it), then test its connection, as the service does."""
        name = _name(p.get("EndpointArn"), "EndpointArn")

        def change(body: dict[str, Any]) -> None:
            engine = body["engine"]
            s3 = p.get("S3Settings")
            if s3 is not None:
                if engine != "lake":
                    raise ConfigError(f"endpoint {name!r} is a {engine} endpoint: S3Settings apply to a lake")
                if not isinstance(s3, dict):
                    raise ConfigError("S3Settings must be an object")
                for key, value in s3.items():
                    if key == "BucketFolder":
                        body["bucket_path"] = None
                    body["settings"][key] = value
            url_parts: dict[str, Any] = {
                k: p[k] for k in ("ServerName", "Port", "Username", "DatabaseName") if k in p
            }
            if url_parts:
                if not body.get("url"):
                    raise ConfigError(f"endpoint {name!r} has no URL to set {', '.join(url_parts)} in")
                body["url"] = _rewrite_url(body["url"], url_parts)
            if "Password" in p:
                body["password"] = p["Password"]

        updated = modify_endpoint(self.store, name, change, origin=f"modifyEndpoint {name}")
        self._test_in_background(updated, name)
        return {"Endpoint": self.endpoint_document(updated, name)}

    def _connection(self, name: str, status: str, message: str | None) -> dict[str, Any]:
        connection = {
            "ReplicationInstanceArn": REPLICATION_INSTANCE_ARN,
            "ReplicationInstanceIdentifier": REPLICATION_INSTANCE,
            "EndpointArn": endpoint_arn(name),
            "EndpointIdentifier": name,
            "Status": status,
        }
        if message:
            connection["LastFailureMessage"] = message
        return connection

    def _test_in_background(self, stack: Stack, name: str) -> None:
        self.store.set_connection(name, "testing")
        thread = threading.Thread(target=self._test, args=(stack, name), name=f"test-{name}", daemon=True)
        thread.start()

    def _test(self, stack: Stack, name: str) -> None:
        from conveyor.connectors.registry import open_source, open_target, plays

        try:
            config = stack.endpoint_config(name)
            connector: Any = open_source(config) if plays(config.engine, "source") else open_target(config)
            try:
                connector.check()
            finally:
                close = getattr(connector, "close", None)
                if close is not None:
                    close()
        except Exception as exc:
            self.store.set_connection(name, "failed", " ".join(str(exc).split()) or type(exc).__name__)
            return
        self.store.set_connection(name, "successful")

    def test_connection(self, p: dict[str, Any]) -> dict[str, Any]:
        stack = self._stack()
        name = self._endpoint_name(stack, p.get("EndpointArn"))
        self._test_in_background(stack, name)
        return {"Connection": self._connection(name, "testing", None)}

    def describe_connections(self, p: dict[str, Any]) -> dict[str, Any]:
        wanted = _filter_values(p, ("endpoint-arn", "endpoint-id"))
        names = None if wanted is None else {_name(w, "Values") for w in wanted}
        found = [
            self._connection(row["endpoint"], row["status"], row["message"])
            for row in sorted(self.store.connections(), key=lambda r: r["endpoint"])
            if names is None or row["endpoint"] in names
        ]
        return {"Connections": found}

    # tasks
    def task_document(self, stack: Stack, name: str) -> dict[str, Any]:
        from conveyor.replication.worker import reap_stale

        spec = stack.tasks[name]
        status = reap_stale(self.store, name, self.executions.events)
        tables = self.store.table_stats(name)
        states = [t.get("TableState") for t in tables]
        loaded = states.count("Table completed")
        errored = sum(1 for s in states if s and "error" in s.lower())
        runs = self.store.list_runs(name, limit=1)
        stats: dict[str, Any] = {
            "FullLoadProgressPercent": int(100 * loaded / len(tables)) if tables else 0,
            "TablesLoaded": loaded,
            "TablesLoading": sum(1 for s in states if s and "loading" in s.lower()),
            "TablesQueued": sum(1 for s in states if s and "before load" in s.lower()),
            "TablesErrored": errored,
        }
        if runs:
            started, stopped = runs[0]["started_at"], runs[0]["stopped_at"]
            stats["StartDate"] = started.isoformat()
            if stopped is not None:
                stats["StopDate"] = stopped.isoformat()
                stats["ElapsedTimeMillis"] = int((stopped - started).total_seconds() * 1000)
        doc: dict[str, Any] = {
            "ReplicationTaskIdentifier": name,
            "ReplicationTaskArn": task_arn(name),
            "SourceEndpointArn": endpoint_arn(spec.source),
            "TargetEndpointArn": endpoint_arn(spec.target),
            "ReplicationInstanceArn": REPLICATION_INSTANCE_ARN,
            "MigrationType": spec.migration_type,
            "TableMappings": json.dumps(spec.table_mappings),
            "ReplicationTaskSettings": json.dumps(spec.settings),
            "Status": status["status"],
            "ReplicationTaskStats": stats,
        }
        if status.get("stop_reason"):
            doc["StopReason"] = f"Stop Reason {status['stop_reason']}"
        if status.get("last_error"):
            doc["LastFailureMessage"] = status["last_error"]
        return doc

    def describe_replication_tasks(self, p: dict[str, Any]) -> dict[str, Any]:
        stack = self._stack()
        wanted = _filter_values(p, ("replication-task-arn", "replication-task-id"))
        names = sorted(stack.tasks)
        if wanted is not None:
            names = [n for n in names if n in {_name(w, "Values") for w in wanted}]
        return {"ReplicationTasks": [self.task_document(stack, n) for n in names]}

    def start_replication_task(self, p: dict[str, Any]) -> dict[str, Any]:
        from conveyor.replication.worker import claim_start, spawn_worker

        stack = self._stack()
        name = self._task_name(stack, p.get("ReplicationTaskArn"))
        kind = p.get("StartReplicationTaskType", "start-replication")
        if kind not in START_TYPES:
            raise ConfigError(
                f"StartReplicationTaskType must be one of {', '.join(START_TYPES)}, got {kind!r}"
            )
        connection = {r["endpoint"]: r for r in self.store.connections()}
        for endpoint in (stack.tasks[name].source, stack.tasks[name].target):
            tested = connection.get(endpoint)
            if tested is not None and tested["status"] != "successful":
                raise ConfigError(
                    f"endpoint {endpoint!r}: its connection test is {tested['status']}; "
                    "a task starts once it is successful"
                )
        events = self.executions.events
        run_id = claim_start(self.store, stack, name, events=events)
        spawn_worker(self.store, name, run_id, START_TYPES[kind], events=events)  # type: ignore[arg-type]
        self.executions.started_tasks.add(name)
        return {"ReplicationTask": self.task_document(stack, name)}

    def stop_replication_task(self, p: dict[str, Any]) -> dict[str, Any]:
        from conveyor.replication.worker import request_stop

        stack = self._stack()
        name = self._task_name(stack, p.get("ReplicationTaskArn"))
        request_stop(self.store, name, events=self.executions.events)
        return {"ReplicationTask": self.task_document(stack, name)}


def _filter_values(p: dict[str, Any], names: tuple[str, ...]) -> list[str] | None:
    filters = p.get("Filters")
    if not filters:
        return None
    values: list[str] = []
    for item in filters:
        if isinstance(item, dict) and item.get("Name") in names:
            values += [str(v) for v in item.get("Values") or []]
    return values


def _rewrite_url(url: str, parts: dict[str, Any]) -> str:
    split = urlsplit(url)
    user = parts.get("Username", split.username)
    host = parts.get("ServerName", split.hostname) or ""
    port = parts.get("Port", split.port)
    netloc = (f"{user}@" if user else "") + host + (f":{port}" if port else "")
    path = "/" + str(parts["DatabaseName"]) if "DatabaseName" in parts else split.path
    return urlunsplit((split.scheme, netloc, path, split.query, split.fragment))


# --- Lambda: a Python function ---------------------------------------------------------------


def resolve_function(name: Any) -> Callable[..., Any]:
    """``module:function`` (or a Lambda ARN ending in it) as the function."""
    if not isinstance(name, str):
        raise TaskError("Lambda.InvalidParameterValueException", "FunctionName must be module:function")
    if ":function:" in name:
        name = name.split(":function:", 1)[1]
    module_name, _, attribute = name.partition(":")
    if not module_name or not attribute:
        raise TaskError(
            "Lambda.InvalidParameterValueException",
            f"FunctionName {name!r}: name a Python function as module:function (e.g. mypkg.jobs:handler)",
        )
    try:
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise TaskError("Lambda.ResourceNotFoundException", f"FunctionName {name!r}: {exc}") from None
    if not callable(target):
        raise TaskError("Lambda.ResourceNotFoundException", f"FunctionName {name!r} is not callable")
    return target  # type: ignore[no-any-return]


def lambda_invoke(executions: IntegrationHost) -> TaskHandler:
    """``lambda:invoke``: a function the stack declares (``functions:``) runs as
    written in a child process (lambda_runtime.py); otherwise ``FunctionName`` is a
    Python ``module:function`` called in this process."""

    def handler(parameters: Any, context: TaskContext) -> Any:
        p = _params(parameters)
        payload = p.get("Payload")
        if isinstance(payload, str):
            with contextlib.suppress(json.JSONDecodeError):
                payload = json.loads(payload)
        name = p.get("FunctionName")
        declared = executions.stack().functions
        short = name.rsplit(":function:", 1)[-1].split(":")[0] if isinstance(name, str) else None
        if short in declared:
            spec = declared[short]
            call = Invocation(
                short, spec.file, spec.function, spec.environment, spec.timeout, executions.aws_endpoint
            )
            try:
                result = invoke(call, payload)
            except FunctionFailed as exc:
                message = json.dumps({"errorMessage": exc.message, "errorType": exc.error_type})
                raise TaskError(exc.error_type, message) from None
        else:
            result = _call_in_process(p, payload, context)
        return {"ExecutedVersion": "$LATEST", "Payload": result, "StatusCode": 200}

    return handler


def _call_in_process(p: dict[str, Any], payload: Any, context: TaskContext) -> Any:
    function = resolve_function(p.get("FunctionName"))
    try:
        takes_context = len(inspect.signature(function).parameters) >= 2
    except (TypeError, ValueError):
        takes_context = False
    lambda_context = {
        "function_name": p.get("FunctionName"),
        "execution_id": context.execution_id,
        "state_name": context.state_name,
    }
    try:
        return function(payload, lambda_context) if takes_context else function(payload)
    except Exception as exc:
        error_type = type(exc).__name__
        raise TaskError(error_type, json.dumps({"errorMessage": str(exc), "errorType": error_type})) from None


# --- nested state machines --------------------------------------------------------------------


def _start_execution(executions: IntegrationHost, mode: str) -> TaskHandler:
    def handler(parameters: Any, context: TaskContext) -> Any:
        p = _params(parameters)
        machine = p.get("StateMachineArn")
        if not isinstance(machine, str):
            raise TaskError("StepFunctions.InvalidArn", "StateMachineArn is required")
        child_input = p.get("Input", {})
        if isinstance(child_input, str):
            try:
                child_input = json.loads(child_input)
            except json.JSONDecodeError:
                raise TaskError("StepFunctions.InvalidExecutionInputException", "Input is not JSON") from None
        try:
            started = executions.start(
                machine, child_input, name=p.get("Name"), run="inline" if mode != "async" else "thread"
            )
        except NotFoundError as exc:
            raise TaskError("StepFunctions.StateMachineDoesNotExistException", str(exc)) from None
        except ConfigError as exc:
            if "already has an execution named" in str(exc):
                raise TaskError("StepFunctions.ExecutionAlreadyExistsException", str(exc)) from None
            raise TaskError("StepFunctions.InvalidDefinitionException", str(exc)) from None
        if mode == "async":
            return {"ExecutionArn": started["executionArn"], "StartDate": started["startDate"]}
        if started["status"] == "RUNNING":  # suspended: this process is shutting down
            from conveyor.orchestration.asl.clock import ExecutionSuspended

            raise ExecutionSuspended
        if started["status"] != "SUCCEEDED":
            raise TaskError("States.TaskFailed", json.dumps(started))
        answer = {
            "ExecutionArn": started["executionArn"],
            "StateMachineArn": started["stateMachineArn"],
            "Name": started["name"],
            "Status": started["status"],
            "StartDate": started["startDate"],
            "StopDate": started.get("stopDate"),
            "Input": started["input"],
            "Output": started.get("output"),
        }
        if mode == "sync2":
            answer["Input"] = json.loads(started["input"])
            answer["Output"] = json.loads(started["output"]) if started.get("output") else None
        return answer

    return handler


def build_integrations(executions: IntegrationHost) -> Integrations:
    """Every resource Conveyor runs, bound to one :class:`IntegrationHost` (an Executions)."""
    found = Integrations()
    data = RedshiftData(executions)
    for action, method in (
        ("executeStatement", data.execute_statement),
        ("describeStatement", data.describe_statement),
        ("getStatementResult", data.get_statement_result),
        ("cancelStatement", data.cancel_statement),
    ):
        found.register(f"{SDK}redshiftdata:{action}", _service_errors("RedshiftData", method))
    dms = DatabaseMigration(executions)
    for action, method in (
        ("modifyEndpoint", dms.modify_endpoint),
        ("describeEndpoints", dms.describe_endpoints),
        ("describeConnections", dms.describe_connections),
        ("testConnection", dms.test_connection),
        ("startReplicationTask", dms.start_replication_task),
        ("stopReplicationTask", dms.stop_replication_task),
        ("describeReplicationTasks", dms.describe_replication_tasks),
    ):
        found.register(f"{SDK}databasemigration:{action}", _service_errors("DatabaseMigration", method))
    found.register("arn:aws:states:::lambda:invoke", lambda_invoke(executions))
    runs = JobRuns(executions.store, executions.stack)
    found.register(START_JOB_RUN, start_job_run(runs, sync=False))
    found.register(f"{START_JOB_RUN}.sync", start_job_run(runs, sync=True))
    found.register("arn:aws:states:::states:startExecution", _start_execution(executions, "async"))
    found.register("arn:aws:states:::states:startExecution.sync", _start_execution(executions, "sync"))
    found.register("arn:aws:states:::states:startExecution.sync:2", _start_execution(executions, "sync2"))
    register_s3(found, executions.stack)
    return found
