"""A Distributed Map's ``ResultWriter``: its results shaped and written as Step Functions
exports them (AWS developer guide, "ResultWriter (Map)").

* ``WriterConfig.Transformation``: ``COMPACT`` (the iterations' outputs; the default
  without an export), ``FLATTEN`` (outputs that are arrays spliced in), ``NONE`` (one
  record per iteration with its input, output and status; the default of an export). A
  failed iteration is always a record, as the service returns it unchanged.
* With ``Resource`` ``arn:aws:states:::s3:putObject`` and ``Bucket`` / ``Prefix``, the
  results go to ``PREFIX/MAP_RUN_ID/SUCCEEDED_0.json`` and ``FAILED_0.json`` (JSON
  arrays), listed by ``manifest.json`` (``DestinationBucket``, ``MapRunArn``,
  ``ResultFiles`` by status, each ``{Key, Size}``), written through the integrations
  registry like an ItemReader's reads (so the engine does no I/O); the Map's result is
  then ``{"MapRunArn", "ResultWriterDetails": {"Bucket", "Key"}}`` (the manifest's key).

Iterations run inside the execution, not as child executions: a record's ``Name`` is the
item's index, and it has no ``ExecutionArn``, ``StartDate`` or ``StopDate``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from conveyor.orchestration.asl import errors as E
from conveyor.orchestration.asl.errors import StatesError

PUT_OBJECT = "arn:aws:states:::s3:putObject"
TRANSFORMATIONS = ("NONE", "COMPACT", "FLATTEN")
OUTPUT_TYPES = ("JSON",)

Put = Callable[[dict[str, Any]], Any]
"""Writes ``{"Bucket", "Key", "Body"}`` (the ``s3:putObject`` integration)."""


def exports(writer: dict[str, Any]) -> bool:
    return "Resource" in writer


def transformation(writer: dict[str, Any]) -> str:
    default = "NONE" if exports(writer) else "COMPACT"
    return str(writer.get("WriterConfig", {}).get("Transformation", default))


def _record(index: int, item_input: Any, output: Any, failure: StatesError | None) -> dict[str, Any]:
    record: dict[str, Any] = {
        "Name": str(index),
        "Input": json.dumps(item_input),
        "InputDetails": {"Included": True},
    }
    if failure is None:
        record |= {"Output": json.dumps(output), "OutputDetails": {"Included": True}, "Status": "SUCCEEDED"}
    else:
        record |= {"Error": failure.error, "Cause": failure.cause or "", "Status": "FAILED"}
    return record


def results(
    kind: str,
    inputs: Sequence[Any],
    outputs: Sequence[Any],
    failures: dict[int, StatesError],
) -> list[tuple[str, Any]]:
    """``(status, result)`` of every iteration, in the items' order, under the ``kind``
    transformation (a FLATTEN of an array output gives one pair per element)."""
    out: list[tuple[str, Any]] = []
    for index, output in enumerate(outputs):
        if index in failures:
            out.append(("FAILED", _record(index, inputs[index], None, failures[index])))
        elif kind == "NONE":
            out.append(("SUCCEEDED", _record(index, inputs[index], output, None)))
        elif kind == "FLATTEN" and isinstance(output, list):
            out.extend(("SUCCEEDED", element) for element in output)
        else:
            out.append(("SUCCEEDED", output))
    return out


def write(parameters: Any, map_run_arn: str, shaped: list[tuple[str, Any]], put: Put) -> dict[str, Any]:
    """Write the result files and the manifest; returns the Map's result."""
    if not isinstance(parameters, dict):
        raise StatesError(E.RESULT_WRITER_FAILED, "ResultWriter's Parameters must give an object")
    bucket, prefix = parameters.get("Bucket"), parameters.get("Prefix", "")
    if not isinstance(bucket, str) or not bucket or not isinstance(prefix, str):
        cause = f"ResultWriter needs a Bucket and a Prefix (strings), got {bucket!r} and {prefix!r}"
        raise StatesError(E.RESULT_WRITER_FAILED, cause)
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    folder = prefix + map_run_arn.rsplit(":", 1)[1] + "/"
    files: dict[str, list[dict[str, Any]]] = {"FAILED": [], "PENDING": [], "SUCCEEDED": []}
    for status in ("SUCCEEDED", "FAILED"):
        chosen = [result for of, result in shaped if of == status]
        if not chosen:
            continue
        key = f"{folder}{status}_0.json"
        body = json.dumps(chosen).encode()
        _put(put, bucket, key, body)
        files[status].append({"Key": key, "Size": len(body)})
    manifest = {"DestinationBucket": bucket, "MapRunArn": map_run_arn, "ResultFiles": files}
    key = folder + "manifest.json"
    _put(put, bucket, key, json.dumps(manifest, indent=2).encode())
    return {"MapRunArn": map_run_arn, "ResultWriterDetails": {"Bucket": bucket, "Key": key}}


def _put(put: Put, bucket: str, key: str, body: bytes) -> None:
    try:
        put({"Bucket": bucket, "Key": key, "Body": body.decode()})
    except StatesError as exc:
        raise StatesError(E.RESULT_WRITER_FAILED, f"{PUT_OBJECT} {key}: {exc.error}: {exc.cause}") from None
