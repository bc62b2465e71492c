"""What each state of an execution did: the state-level view the console draws over
the definition's graph (GetExecutionHistory has the same events, one by one)."""

from __future__ import annotations

from conveyor.orchestration.executions import Executions
from conveyor.service.models import ExecutionStates, StateRun


def execution_states(executions: Executions, ref: str) -> ExecutionStates:
    """The definition the execution ran (even if re-applied since), the states in the
    order entered, and per state its last entry's input, output and error."""
    row = executions.resolve(ref)
    definition = row["record"].get("definition")
    if not isinstance(definition, dict):
        definition = executions.definition(row["state_machine"])
    states: dict[str, StateRun] = {}
    path: list[str] = []
    current: StateRun | None = None
    for event in executions.store.execution_events(row["id"]):
        kind, details = event["type"], event["details"]
        if kind.endswith("StateEntered"):
            current = states.setdefault(details["name"], StateRun(name=details["name"]))
            current.entered += 1
            current.input = details.get("input")
            current.exited = False
            path.append(details["name"])
        elif kind.endswith("StateExited") and details.get("name") in states:
            states[details["name"]].output = details.get("output")
            states[details["name"]].exited = True
        elif (kind.endswith("Failed") or kind.endswith("TimedOut")) and details.get("error"):
            target = states.get(details.get("name", "")) or current
            if target is not None and not kind.startswith("Execution"):
                target.error, target.cause = details.get("error"), details.get("cause")
    return ExecutionStates(
        definition=definition,
        path=path,
        states=[states[n] for n in dict.fromkeys(path)],
        failed_state=next((s.name for s in states.values() if s.error and not s.exited), None),
    )
