"""Reading the fields particular to each ASL state type (Pass, Task, Choice,
Wait, Succeed, Fail, Parallel, Map with its Distributed Map parts): one
``state_<type>`` method per type fills the state's fields."""

from __future__ import annotations

from typing import Any

from conveyor.core.errors import ConfigError
from conveyor.orchestration.asl.choice import Rule, parse_rule, parse_timestamp
from conveyor.orchestration.asl.definition_fields import DISTRIBUTED_ONLY, FieldReader, did_you_mean
from conveyor.orchestration.asl.definition_model import ResourceResolver, StateMachine
from conveyor.orchestration.asl.jsonata_eval import expression_of
from conveyor.stack.model import waiting_resources


class StateTypeReader(FieldReader):
    """The per-type part of reading a state; Parallel and Map read their inner
    state machines with :meth:`machine`, which the definition's reader gives."""

    resources: ResourceResolver | None

    def machine(self, data: Any, base: str, *, top: bool = False) -> StateMachine:
        raise NotImplementedError

    def state_pass(self, body: dict[str, Any], where: str, names: list[str], fields: dict[str, Any]) -> None:
        if "Result" in body:
            fields["result"] = body["Result"]
            fields["has_result"] = True

    def state_task(self, body: dict[str, Any], where: str, names: list[str], fields: dict[str, Any]) -> None:
        resource = body.get("Resource")
        if not isinstance(resource, str) or not resource:
            raise ConfigError(f"{where}.Resource: missing; a Task needs the ARN of what it runs")
        if self.resources is not None and self.resources.resolve(resource) is None:
            raise ConfigError(f"{where}.Resource: no integration handles {resource!r}")
        fields["resource"] = resource
        for key in ("TimeoutSeconds", "HeartbeatSeconds"):
            if key in body and f"{key}Path" in body:
                raise ConfigError(f"{where}: use either {key} or {key}Path, not both")
        timeout = heartbeat = None
        if "TimeoutSeconds" in body:
            timeout = self.expression_or_int(body, "TimeoutSeconds", where, fields)
        if "HeartbeatSeconds" in body:
            heartbeat = self.expression_or_int(body, "HeartbeatSeconds", where, fields)
        if timeout is not None and heartbeat is not None and heartbeat >= timeout:
            raise ConfigError(f"{where}.HeartbeatSeconds: must be smaller than TimeoutSeconds ({timeout})")
        fields["timeout_seconds"], fields["heartbeat_seconds"] = timeout, heartbeat
        if "TimeoutSecondsPath" in body:
            fields["timeout_seconds_path"] = self.path(
                body["TimeoutSecondsPath"], f"{where}.TimeoutSecondsPath"
            )
        if "HeartbeatSecondsPath" in body:
            fields["heartbeat_seconds_path"] = self.path(
                body["HeartbeatSecondsPath"], f"{where}.HeartbeatSecondsPath"
            )

    def state_choice(
        self, body: dict[str, Any], where: str, names: list[str], fields: dict[str, Any]
    ) -> None:
        choices = body.get("Choices")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}.Choices: missing or empty; a Choice state needs at least one rule")
        rules, assigns, outputs = [], [], []
        jsonata = fields["query_language"] == "JSONata"
        for i, given in enumerate(choices):
            here = f"{where}.Choices[{i}]"
            item = dict(given) if isinstance(given, dict) else given
            assign = item.pop("Assign", None) if isinstance(item, dict) else None
            assigns.append(None if assign is None else self.assign(assign, f"{here}.Assign", jsonata))
            output = (False, None)
            if isinstance(item, dict) and "Output" in item:
                if not jsonata:
                    raise ConfigError(
                        f"{here}.Output: only a JSONata state has Output (set QueryLanguage: JSONata)"
                    )
                self.jsonata(item["Output"], f"{here}.Output")
                output = (True, item.pop("Output"))
            outputs.append(output)
            if not jsonata and isinstance(item, dict) and "Condition" in item:
                raise ConfigError(
                    f"{here}.Condition: only a JSONata state has Condition (set QueryLanguage: JSONata)"
                )
            rule = self.condition(item, here) if jsonata else parse_rule(item, here, top_level=True)
            self.target(rule.next, f"{here}.Next", names)
            rules.append(rule)
        fields["choices"] = tuple(rules)
        fields["choice_assign"], fields["choice_output"] = tuple(assigns), tuple(outputs)
        if "Default" in body:
            fields["default"] = self.target(body["Default"], f"{where}.Default", names)

    def condition(self, item: Any, where: str) -> Rule:
        """A JSONata Choice rule: ``Condition`` (``{% %}`` or a boolean) and ``Next``."""
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: a Choice rule must be an object")
        for key in item:
            if key not in {"Condition", "Next", "Comment"}:
                raise ConfigError(f"{where}.{key}: a JSONata Choice rule has Condition, Next, Output, Assign")
        if "Condition" not in item:
            raise ConfigError(f"{where}.Condition: missing; a JSONata Choice rule needs a Condition")
        condition = item["Condition"]
        if expression_of(condition) is None and not isinstance(condition, bool):
            raise ConfigError(f"{where}.Condition: must be a {{% %}} expression or a boolean")
        self.jsonata(condition, f"{where}.Condition")
        if not isinstance(item.get("Next"), str):
            raise ConfigError(f"{where}.Next: a top-level Choice rule needs 'Next' (a state name)")
        return Rule(kind="Condition", operand=condition, next=item["Next"])

    def state_wait(self, body: dict[str, Any], where: str, names: list[str], fields: dict[str, Any]) -> None:
        given = [k for k in ("Seconds", "SecondsPath", "Timestamp", "TimestampPath") if k in body]
        if len(given) != 1:
            found = ", ".join(given) or "none"
            raise ConfigError(
                f"{where}: a Wait needs exactly one of Seconds, SecondsPath, Timestamp, "
                f"TimestampPath (found {found})"
            )
        key = given[0]
        if key == "Seconds":
            fields["seconds"] = self.expression_or_int(body, key, where, fields, minimum=0)
        elif key == "Timestamp" and fields["query_language"] == "JSONata" and expression_of(body[key]):
            self.jsonata(body[key], f"{where}.Timestamp")
            fields["expressions"][key] = expression_of(body[key])
        elif key == "Timestamp":
            if parse_timestamp(body[key]) is None:
                raise ConfigError(f"{where}.Timestamp: not an RFC 3339 timestamp like 2024-01-01T00:00:00Z")
            fields["timestamp"] = body[key]
        else:
            fields["seconds_path" if key == "SecondsPath" else "timestamp_path"] = self.path(
                body[key], f"{where}.{key}"
            )

    def state_succeed(
        self, body: dict[str, Any], where: str, names: list[str], fields: dict[str, Any]
    ) -> None:
        return None

    def state_fail(self, body: dict[str, Any], where: str, names: list[str], fields: dict[str, Any]) -> None:
        for key in ("Error", "Cause"):
            if key in body and f"{key}Path" in body:
                raise ConfigError(f"{where}: use either {key} or {key}Path, not both")
            if key in body:
                if not isinstance(body[key], str):
                    raise ConfigError(f"{where}.{key}: must be a string")
                if fields["query_language"] == "JSONata" and expression_of(body[key]) is not None:
                    self.jsonata(body[key], f"{where}.{key}")
                    fields["expressions"][key] = expression_of(body[key])
                fields[key.lower()] = body[key]
            if f"{key}Path" in body:
                self.dynamic(body[f"{key}Path"], f"{where}.{key}Path")
                fields[f"{key.lower()}_path"] = body[f"{key}Path"]

    def state_parallel(
        self, body: dict[str, Any], where: str, names: list[str], fields: dict[str, Any]
    ) -> None:
        branches = body.get("Branches")
        if not isinstance(branches, list) or not branches:
            raise ConfigError(f"{where}.Branches: missing or empty; a Parallel state needs branches")
        fields["branches"] = tuple(
            self.machine(branch, f"{where}.Branches[{i}]") for i, branch in enumerate(branches)
        )

    def state_map(self, body: dict[str, Any], where: str, names: list[str], fields: dict[str, Any]) -> None:
        if "ItemProcessor" in body and "Iterator" in body:
            raise ConfigError(f"{where}: use either ItemProcessor or Iterator, not both")
        key = "ItemProcessor" if "ItemProcessor" in body else "Iterator"
        if key not in body:
            raise ConfigError(f"{where}.ItemProcessor: missing; a Map state needs the states to run per item")
        processor = body[key]
        config = processor.get("ProcessorConfig", {}) if isinstance(processor, dict) else {}
        mode = config.get("Mode", "INLINE") if isinstance(config, dict) else None
        if mode not in ("INLINE", "DISTRIBUTED"):
            raise ConfigError(
                f"{where}.{key}.ProcessorConfig.Mode: must be INLINE or DISTRIBUTED, got {mode!r}"
            )
        fields["mode"] = mode
        kind = config.get("ExecutionType", "STANDARD") if isinstance(config, dict) else None
        if mode == "DISTRIBUTED" and kind not in ("STANDARD", "EXPRESS"):
            raise ConfigError(
                f"{where}.{key}.ProcessorConfig.ExecutionType: must be STANDARD or EXPRESS, got {kind!r}"
            )
        waiting = waiting_resources(processor) if mode == "DISTRIBUTED" and kind == "EXPRESS" else []
        if waiting:  # as AWS: EXPRESS child workflows cannot wait
            inner, resource, pattern = waiting[0]
            raise ConfigError(
                f"{where}.{key}.{inner}.Resource: {resource}: an EXPRESS child workflow does not "
                f"support the '{pattern}' integration pattern"
            )
        for extra in DISTRIBUTED_ONLY:
            if extra in body and mode != "DISTRIBUTED":
                raise ConfigError(
                    f"{where}.{extra}: only a Distributed Map has {extra} "
                    f"(set {key}.ProcessorConfig.Mode: DISTRIBUTED)"
                )
        fields["processor"] = self.machine(processor, f"{where}.{key}")
        jsonata = fields["query_language"] == "JSONata"
        if "ItemSelector" in body and "Parameters" in body:
            raise ConfigError(f"{where}: use either ItemSelector or Parameters, not both")
        if "ItemSelector" in body:
            if jsonata:
                self.jsonata(body["ItemSelector"], f"{where}.ItemSelector")
            else:
                self.template(body["ItemSelector"], f"{where}.ItemSelector")
            fields["item_selector"], fields["has_item_selector"] = body["ItemSelector"], True
        elif fields.get("has_parameters"):
            # In a Map state, Parameters is the older name of ItemSelector.
            fields["item_selector"], fields["has_item_selector"] = fields["parameters"], True
            fields["parameters"], fields["has_parameters"] = None, False
        if "ItemsPath" in body:
            fields["items_path"] = self.path(body["ItemsPath"], f"{where}.ItemsPath")
        if "Items" in body:
            if "ItemReader" in body:
                raise ConfigError(f"{where}: use either Items or ItemReader, not both")
            self.jsonata(body["Items"], f"{where}.Items")
            if expression_of(body["Items"]) is None and not isinstance(body["Items"], list):
                raise ConfigError(f"{where}.Items: must be a JSON array or a {{% %}} expression")
            fields["items"], fields["has_items"] = body["Items"], True
        if "MaxConcurrency" in body and "MaxConcurrencyPath" in body:
            raise ConfigError(f"{where}: use either MaxConcurrency or MaxConcurrencyPath, not both")
        if "MaxConcurrency" in body:
            fields["max_concurrency"] = (
                self.expression_or_int(body, "MaxConcurrency", where, fields, minimum=0) or 0
            )
        if "MaxConcurrencyPath" in body:
            fields["max_concurrency_path"] = self.path(
                body["MaxConcurrencyPath"], f"{where}.MaxConcurrencyPath"
            )
        self.distributed(body, where, fields)

    def distributed(self, body: dict[str, Any], where: str, fields: dict[str, Any]) -> None:
        """ItemReader, ItemBatcher, ToleratedFailure* and ResultWriter of a Distributed Map."""
        if "ResultWriter" in body:
            fields["result_writer"] = self.result_writer(body["ResultWriter"], f"{where}.ResultWriter")
        if "ItemReader" in body:
            fields["item_reader"] = self.item_reader(body["ItemReader"], f"{where}.ItemReader")
        if "ItemBatcher" in body:
            batcher = body["ItemBatcher"]
            here = f"{where}.ItemBatcher"
            if not isinstance(batcher, dict):
                raise ConfigError(f"{here}: must be an object")
            known = {
                "MaxItemsPerBatch",
                "MaxInputBytesPerBatch",
                "BatchInput",
                "MaxItemsPerBatchPath",
                "MaxInputBytesPerBatchPath",
            }
            for key in batcher:
                if key not in known:
                    raise ConfigError(f"{here}.{key}: unknown field{did_you_mean(key, sorted(known))}")
            for key in ("MaxItemsPerBatch", "MaxInputBytesPerBatch"):
                if key in batcher:
                    self.expression_or_int(batcher, key, here, fields, maximum=262144)
            if not {
                "MaxItemsPerBatch",
                "MaxInputBytesPerBatch",
                "MaxItemsPerBatchPath",
                "MaxInputBytesPerBatchPath",
            } & set(batcher):
                raise ConfigError(f"{here}: needs MaxItemsPerBatch or MaxInputBytesPerBatch")
            fields["item_batcher"] = batcher
        for key in ("ToleratedFailureCount", "ToleratedFailurePercentage"):
            if key not in body:
                continue
            value = body[key]
            if expression_of(value) is not None and fields["query_language"] == "JSONata":
                self.jsonata(value, f"{where}.{key}")
                fields["expressions"][key] = expression_of(value)
                continue
            bad = isinstance(value, bool) or not isinstance(value, int | float) or value < 0
            if bad or (key == "ToleratedFailurePercentage" and value > 100):
                upper = "100" if key == "ToleratedFailurePercentage" else "any"
                raise ConfigError(f"{where}.{key}: must be a number from 0 to {upper}, got {value!r}")
            if key == "ToleratedFailureCount":
                fields["tolerated_failure_count"] = int(value)
            else:
                fields["tolerated_failure_percentage"] = float(value)
        for key in ("ToleratedFailureCountPath", "ToleratedFailurePercentagePath"):
            if key in body:
                fields["expressions"][key] = self.path(body[key], f"{where}.{key}")

    def result_writer(self, value: Any, where: str) -> dict[str, Any]:
        """``Resource`` with ``Parameters`` / ``Arguments`` (Bucket, Prefix), and/or
        ``WriterConfig`` (Transformation; OutputType JSON)."""
        from conveyor.orchestration.asl.result_writer import OUTPUT_TYPES, PUT_OBJECT, TRANSFORMATIONS

        known = {"Resource", "Parameters", "Arguments", "WriterConfig"}
        if not isinstance(value, dict) or not value:
            raise ConfigError(f"{where}: must be an object with Resource and Parameters, or WriterConfig")
        for key in value:
            if key not in known:
                raise ConfigError(f"{where}.{key}: unknown field{did_you_mean(key, sorted(known))}")
        arguments = "Arguments" if "Arguments" in value else "Parameters"
        if "Resource" in value or arguments in value:
            if value.get("Resource") != PUT_OBJECT:
                raise ConfigError(f"{where}.Resource: must be {PUT_OBJECT}, got {value.get('Resource')!r}")
            if arguments not in value:
                raise ConfigError(
                    f"{where}: Resource needs Parameters (Arguments in JSONata): Bucket, Prefix"
                )
            if arguments == "Parameters":
                self.template(value["Parameters"], f"{where}.Parameters")
            else:
                self.jsonata(value["Arguments"], f"{where}.Arguments")
        config = value.get("WriterConfig", {})
        if not isinstance(config, dict):
            raise ConfigError(f"{where}.WriterConfig: must be an object")
        for key in config:
            if key not in ("Transformation", "OutputType"):
                raise ConfigError(f"{where}.WriterConfig.{key}: unknown field (Transformation, OutputType)")
        if config.get("Transformation", "NONE") not in TRANSFORMATIONS:
            raise ConfigError(
                f"{where}.WriterConfig.Transformation: must be one of {', '.join(TRANSFORMATIONS)}, "
                f"got {config['Transformation']!r}"
            )
        if config.get("OutputType", "JSON") not in OUTPUT_TYPES:
            raise ConfigError(
                f"{where}.WriterConfig.OutputType: {config['OutputType']!r} is not supported by Conveyor "
                "(JSON only)"
            )
        return value

    def item_reader(self, value: Any, where: str) -> dict[str, Any]:
        from conveyor.orchestration.asl.item_reader import READERS

        if not isinstance(value, dict):
            raise ConfigError(f"{where}: must be an object with Resource")
        for key in value:
            if key not in {"Resource", "Parameters", "Arguments", "ReaderConfig"}:
                raise ConfigError(
                    f"{where}.{key}: unknown field (Resource, Parameters, Arguments, ReaderConfig)"
                )
        resource = value.get("Resource")
        if resource not in READERS:
            raise ConfigError(
                f"{where}.Resource: must be one of {', '.join(sorted(READERS))}, got {resource!r}"
            )
        if "Parameters" in value:
            self.template(value["Parameters"], f"{where}.Parameters")
        if "Arguments" in value:
            self.jsonata(value["Arguments"], f"{where}.Arguments")
        config = value.get("ReaderConfig", {})
        if not isinstance(config, dict):
            raise ConfigError(f"{where}.ReaderConfig: must be an object")
        input_type = config.get("InputType")
        if resource.endswith(":getObject"):
            if input_type not in ("JSON", "JSONL", "CSV"):
                raise ConfigError(
                    f"{where}.ReaderConfig.InputType: must be JSON, JSONL or CSV, got {input_type!r}"
                )
            if input_type == "CSV" and config.get("CSVHeaderLocation", "FIRST_ROW") not in (
                "FIRST_ROW",
                "GIVEN",
            ):
                raise ConfigError(f"{where}.ReaderConfig.CSVHeaderLocation: must be FIRST_ROW or GIVEN")
            if config.get("CSVHeaderLocation") == "GIVEN" and not isinstance(config.get("CSVHeaders"), list):
                raise ConfigError(
                    f"{where}.ReaderConfig.CSVHeaders: needed (a list) with CSVHeaderLocation GIVEN"
                )
        if "MaxItems" in config:
            self.positive_int(config["MaxItems"], f"{where}.ReaderConfig.MaxItems", maximum=100_000_000)
        return value
