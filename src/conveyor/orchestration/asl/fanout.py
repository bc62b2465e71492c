"""Map and Parallel: iterations / branches run concurrently and checkpointed one by one.

:class:`FanOut` is a part of :class:`~conveyor.orchestration.asl.engine.Execution`
(a mixin, see ``parts``): it runs a Map's or a Parallel's jobs in threads, at most
MaxConcurrency at once (0 = :data:`MAX_CONCURRENCY`), records each finished one in the
cursor's ``done`` and commits, so a resumed execution runs only the unfinished ones; it
reads a Distributed Map's items (ItemReader), batches them (ItemBatcher) and tolerates
failures (ToleratedFailure*).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from conveyor.orchestration.asl import errors as E
from conveyor.orchestration.asl import result_writer
from conveyor.orchestration.asl.definition import State, StateMachine
from conveyor.orchestration.asl.errors import StatesError
from conveyor.orchestration.asl.integrations import TaskContext
from conveyor.orchestration.asl.item_reader import batches, items_from
from conveyor.orchestration.asl.parts import ExecutionParts
from conveyor.orchestration.asl.paths import read_path
from conveyor.orchestration.asl.scope import Cancelled, Halt, Scope

MAX_CONCURRENCY = 40
"""Iterations / branches running at once when MaxConcurrency is 0 (or larger)."""

Job = tuple[StateMachine, Any, dict[str, Any] | None]
"""A Map iteration or Parallel branch: the states, their input, the Map item."""


class FanOut(ExecutionParts):
    """Map and Parallel for :class:`Execution`."""

    def _run_scope(self, scope: Scope, data: Any) -> Any:
        name: str | None = scope.machine.start_at
        while name is not None:
            scope.check_halted()
            outcome = self._run_state(scope.machine.states[name], data, scope)
            data, name = outcome.output, outcome.next
        return data

    def _forget(self, prefix: str) -> None:
        """Drop the checkpoints of finished iterations (and tokens) under ``prefix``."""
        top = self.record.cursor
        if top is None or ("/" in prefix and not self._nested_checkpoints):
            return
        with self._lock:
            for book in (top.done, top.tokens):
                for key in [k for k in book if k.startswith(prefix)]:
                    del book[key]

    def _fan_out(
        self,
        state: State,
        scope: Scope,
        jobs: Sequence[Job],
        limit: int,
        kind: str,
        tolerated: tuple[int | None, float | None] = (None, None),
        failed: dict[int, StatesError] | None = None,
    ) -> list[Any]:
        """Run ``jobs`` (machine, input, map item) concurrently, at most ``limit`` at once;
        a job whose output is checkpointed is not run again. Returns the outputs in order.
        The first failure (or, with ``tolerated``, the first beyond it) cancels the rest;
        tolerated failures are kept in ``failed`` by index."""
        prefix = f"{scope.key}{state.name}"
        top = self.record.cursor
        halt = Halt()
        outputs: list[Any] = [None] * len(jobs)
        failures: list[StatesError] = []
        max_count, max_percent = tolerated
        tolerant = max_count is not None or max_percent is not None

        def over_threshold() -> bool:
            if max_count is not None and len(failures) > max_count:
                return True
            return max_percent is not None and len(failures) * 100.0 / len(jobs) > max_percent

        def one(index: int) -> None:
            try:
                run_one(index)
            except BaseException:
                halt.suspended.set()  # a suspension (or a bug): start nothing more
                halt.cancelled.set()
                raise

        def run_one(index: int) -> None:
            key = f"{prefix}[{index}]"
            with self._lock:
                if top is not None and key in top.done:
                    outputs[index] = top.done[key]
                    return
            if halt.cancelled.is_set():
                return
            machine, data, map_item = jobs[index]
            child = Scope(
                machine, False, map_item, key=f"{key}/", outer=scope.visible(), halt=halt, parent=scope
            )
            if kind == "Map":
                self._event("MapIterationStarted", name=state.name, index=index)
            try:
                output = self._run_scope(child, data)
            except Cancelled:
                if kind == "Map":
                    self._event("MapIterationAborted", name=state.name, index=index)
                return
            except StatesError as exc:
                if kind == "Map":
                    self._event(
                        "MapIterationFailed", name=state.name, index=index, error=exc.error, cause=exc.cause
                    )
                with self._lock:
                    failures.append(exc)
                    if failed is not None:
                        failed[index] = exc
                    outputs[index] = {"Error": exc.error, "Cause": exc.cause or ""}
                    if not tolerant or over_threshold():
                        halt.cancelled.set()
                return
            if kind == "Map":
                self._event("MapIterationSucceeded", name=state.name, index=index)
            with self._lock:
                outputs[index] = output
                if top is not None:
                    top.done[key] = output
                    self._nested_checkpoints |= "/" in key
                    self._forget(f"{key}/")
                    self._commit()

        self._gather(one, len(jobs), limit)
        if failures and (not tolerant or over_threshold()):
            first = failures[0]
            if tolerant:
                cause = (
                    f"{len(failures)} of {len(jobs)} iterations failed, more than tolerated; first: {first}"
                )
                first = StatesError(E.EXCEED_TOLERATED_FAILURE, cause)
            self._event(f"{kind}StateFailed", name=state.name, error=first.error, cause=first.cause)
            raise first
        self._forget(f"{prefix}[")
        self._event(f"{kind}StateSucceeded", name=state.name)
        return outputs

    @staticmethod
    def _gather(one: Any, count: int, limit: int) -> None:
        """Call ``one(i)`` for every index, ``limit`` threads at once (inline when 1);
        an exception other than a state's error (a suspension) is raised once all ended."""
        if limit <= 1 or count <= 1:
            for index in range(count):
                one(index)
            return
        with ThreadPoolExecutor(max_workers=min(limit, count), thread_name_prefix="asl-iteration") as pool:
            futures = [pool.submit(one, index) for index in range(count)]
        for future in futures:
            future.result()

    def _run_parallel(self, state: State, data: Any, scope: Scope) -> list[Any]:
        self._event("ParallelStateStarted", name=state.name)
        jobs = [(branch, data, None) for branch in state.branches]
        return self._fan_out(state, scope, jobs, MAX_CONCURRENCY, "Parallel")

    def _run_map(
        self, state: State, data: Any, context: dict[str, Any], scope: Scope, bindings: Mapping[str, Any]
    ) -> Any:
        jsonata = state.query_language == "JSONata"
        items = self._map_items(state, data, context, bindings)
        assert state.processor is not None
        self._event("MapStateStarted", name=state.name, length=len(items))
        jobs: list[Job] = []
        for index, item in enumerate(items):
            map_item = {"Index": index, "Value": item}
            item_input = item
            if state.has_item_selector:
                item_context = {**context, "Map": {"Item": map_item}}
                if jsonata:
                    item_input = self._jsonata(
                        state.item_selector, {**bindings, "states": {"input": data, "context": item_context}}
                    )
                else:
                    item_input = self._template(state.item_selector, data, item_context, "ItemSelector")
            jobs.append((state.processor, item_input, map_item))
        if state.item_batcher is not None:
            jobs = self._batched(state, data, context, bindings, jobs)
        limit = self._map_number(state, "MaxConcurrency", data, bindings, state.max_concurrency)
        tolerated = (
            self._map_number(state, "ToleratedFailureCount", data, bindings, state.tolerated_failure_count),
            self._map_number(
                state, "ToleratedFailurePercentage", data, bindings, state.tolerated_failure_percentage
            ),
        )
        limit = MAX_CONCURRENCY if not limit or limit > MAX_CONCURRENCY else int(limit)
        failed: dict[int, StatesError] = {}
        outputs = self._fan_out(state, scope, jobs, limit, "Map", tolerated, failed)
        if state.result_writer is None:
            return outputs
        inputs = [item_input for _, item_input, _ in jobs]
        return self._write_results(state, data, context, bindings, inputs, outputs, failed)

    def _write_results(
        self,
        state: State,
        data: Any,
        context: dict[str, Any],
        bindings: Mapping[str, Any],
        inputs: list[Any],
        outputs: list[Any],
        failed: dict[int, StatesError],
    ) -> Any:
        """ResultWriter: the results transformed, and exported through ``s3:putObject``."""
        writer = state.result_writer or {}
        shaped = result_writer.results(result_writer.transformation(writer), inputs, outputs, failed)
        if not result_writer.exports(writer):
            return [result for _, result in shaped]
        if state.query_language == "JSONata":
            parameters = self._jsonata(writer.get("Arguments", {}), bindings)
        else:
            parameters = self._template(
                writer.get("Parameters", {}), data, context, "ResultWriter.Parameters"
            )
        handler = self.integrations.resolve(result_writer.PUT_OBJECT)
        if handler is None:
            raise StatesError(E.RESULT_WRITER_FAILED, f"No integration handles '{result_writer.PUT_OBJECT}'")
        task = TaskContext(result_writer.PUT_OBJECT, state.name, self.execution_id, context, self.clock)
        machine_arn = (
            self.record.state_machine_arn or f"arn:aws:states:::stateMachine:{self.record.state_machine_name}"
        )
        run_arn = machine_arn.replace(":stateMachine:", ":mapRun:", 1) + f"/{state.name}:{uuid.uuid4()}"
        return result_writer.write(parameters, run_arn, shaped, lambda p: handler(p, task))

    def _map_number(self, state: State, key: str, data: Any, bindings: Mapping[str, Any], given: Any) -> Any:
        """MaxConcurrency / ToleratedFailure*: literal, ``{% %}`` or ``...Path``."""
        if key in state.expressions and state.query_language == "JSONata":
            value = self._expression(state, key, bindings)
        elif key == "MaxConcurrency" and state.max_concurrency_path is not None:
            value = read_path(state.max_concurrency_path, data, what="MaxConcurrencyPath")
        elif f"{key}Path" in state.expressions:
            value = read_path(state.expressions[f"{key}Path"], data, what=f"{key}Path")
        else:
            return given
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise StatesError(E.RUNTIME, f"{key} of '{state.name}' gave {value!r}, not a number >= 0")
        return value

    def _map_items(
        self, state: State, data: Any, context: dict[str, Any], bindings: Mapping[str, Any]
    ) -> list[Any]:
        if state.item_reader is not None:
            return self._read_items(state, data, context, bindings)
        if state.query_language == "JSONata":
            items = self._jsonata(state.items, bindings) if state.has_items else data
            if not isinstance(items, list):
                raise StatesError(E.QUERY_EVALUATION, f"The Items of '{state.name}' did not give an array")
            return items
        items = read_path(state.items_path, data, what="ItemsPath")
        if not isinstance(items, list):
            cause = f"ItemsPath '{state.items_path}' of '{state.name}' did not give an array"
            raise StatesError(E.RUNTIME, cause)
        return items

    def _read_items(
        self, state: State, data: Any, context: dict[str, Any], bindings: Mapping[str, Any]
    ) -> list[Any]:
        """A Distributed Map's ItemReader, called through the integrations registry."""
        reader = state.item_reader or {}
        resource = reader["Resource"]
        if state.query_language == "JSONata":
            parameters = self._jsonata(reader.get("Arguments", {}), bindings)
        else:
            parameters = self._template(reader.get("Parameters", {}), data, context, "ItemReader.Parameters")
        handler = self.integrations.resolve(resource)
        if handler is None:
            raise StatesError(E.ITEM_READER_FAILED, f"No integration reads items from '{resource}'")
        task = TaskContext(resource, state.name, self.execution_id, context, self.clock)
        try:
            answer = handler(parameters, task)
        except StatesError as exc:
            raise StatesError(E.ITEM_READER_FAILED, f"{resource}: {exc.error}: {exc.cause}") from None
        return items_from(resource, answer, reader.get("ReaderConfig", {}))

    def _batched(
        self,
        state: State,
        data: Any,
        context: dict[str, Any],
        bindings: Mapping[str, Any],
        jobs: list[Job],
    ) -> list[Job]:
        """ItemBatcher: each iteration gets ``{"Items": [...], "BatchInput": ...}``."""
        batcher = state.item_batcher or {}
        limits: list[int | None] = []
        for key in ("MaxItemsPerBatch", "MaxInputBytesPerBatch"):
            if key in state.expressions and state.query_language == "JSONata":
                limits.append(self._expression(state, key, bindings))
            elif f"{key}Path" in batcher:
                limits.append(read_path(batcher[f"{key}Path"], data, what=f"{key}Path"))
            else:
                limits.append(batcher.get(key))
        batch_input = batcher.get("BatchInput")
        if batch_input is not None:
            if state.query_language == "JSONata":
                batch_input = self._jsonata(batch_input, bindings)
            else:
                batch_input = self._template(batch_input, data, context, "BatchInput")
        assert state.processor is not None
        grouped = batches([item for _, item, _ in jobs], limits[0], limits[1], batch_input)
        return [(state.processor, batch, {"Index": i, "Value": batch}) for i, batch in enumerate(grouped)]
