"""A Distributed Map's ``ItemReader`` and ``ResultWriter`` on the stack's lakes:
``s3:listObjectsV2``, ``s3:getObject`` and ``s3:putObject``.

``Bucket`` names a lake endpoint of the stack (keys are then relative to its path, a
local folder or ``s3://bucket/prefix``), or the S3 bucket of a lake endpoint on S3 (keys
are then the bucket's own; the endpoint's credentials and ``endpoint_url`` reach it).
Any other bucket is ``S3.NoSuchBucket``; a missing key ``S3.NoSuchKey``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from conveyor.connectors.lake.filesystem import LakeFS
from conveyor.connectors.lake.settings import lake_config
from conveyor.core.errors import ConveyorError
from conveyor.orchestration.asl.errors import TaskError
from conveyor.orchestration.asl.integrations import Integrations, TaskContext
from conveyor.orchestration.asl.item_reader import GET_OBJECT, LIST_OBJECTS
from conveyor.orchestration.asl.result_writer import PUT_OBJECT
from conveyor.stack.model import Stack

MAX_OBJECTS = 1_000_000


def lake_bucket(stack: Stack, bucket: Any) -> LakeFS:
    """The lake a ``Bucket`` parameter names (see the module's docstring)."""
    if not isinstance(bucket, str) or not bucket:
        raise TaskError(
            "S3.InvalidBucketName", "Bucket: expected the name of a lake endpoint or its S3 bucket"
        )
    lakes = sorted(name for name, spec in stack.endpoints.items() if spec.engine == "lake")
    for name in lakes:
        config = lake_config(stack.endpoint_config(name))
        if name == bucket:
            return LakeFS(config)
        if config.is_s3 and config.root.removeprefix("s3://").split("/", 1)[0] == bucket:
            return LakeFS(replace(config, root=f"s3://{bucket}"))
    raise TaskError(
        "S3.NoSuchBucket",
        f"Bucket {bucket!r} is neither a lake endpoint nor the bucket of one (lake endpoints: "
        f"{', '.join(lakes) or '-'})",
    )


def list_objects(stack: Callable[[], Stack]) -> Callable[[Any, TaskContext], Any]:
    def handler(parameters: Any, context: TaskContext) -> Any:
        params = parameters if isinstance(parameters, dict) else {}
        lake = lake_bucket(stack(), params.get("Bucket"))
        prefix = str(params.get("Prefix") or "")
        folder = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        try:
            keys = [f"{folder}/{rel}" if folder else rel for rel in lake.list_tree(folder)]
            keys = [key for key in keys if key.startswith(prefix)][:MAX_OBJECTS]
            infos = lake.fs.get_file_info([lake.full(key) for key in keys]) if keys else []
        except (ConveyorError, OSError) as exc:
            raise TaskError("S3.S3Exception", str(exc)) from None
        finally:
            lake.close()
        contents = []
        for key, info in zip(keys, infos, strict=True):
            item: dict[str, Any] = {"Key": key, "Size": int(info.size or 0), "StorageClass": "STANDARD"}
            if info.mtime is not None:
                item["LastModified"] = info.mtime.isoformat().replace("+00:00", "Z")
            contents.append(item)
        return {"Contents": contents, "KeyCount": len(contents), "IsTruncated": False}

    return handler


def get_object(stack: Callable[[], Stack]) -> Callable[[Any, TaskContext], Any]:
    def handler(parameters: Any, context: TaskContext) -> Any:
        params = parameters if isinstance(parameters, dict) else {}
        lake = lake_bucket(stack(), params.get("Bucket"))
        key = params.get("Key")
        if not isinstance(key, str) or not key:
            raise TaskError("S3.InvalidRequest", "Key: expected the key of an object")
        try:
            body = lake.read_bytes(key)
        except ConveyorError as exc:
            raise TaskError("S3.S3Exception", str(exc)) from None
        finally:
            lake.close()
        if body is None:
            raise TaskError("S3.NoSuchKey", f"no object {key!r} in {params.get('Bucket')!r}")
        try:
            return {"Body": body.decode("utf-8-sig"), "ContentLength": len(body)}
        except UnicodeDecodeError:
            raise TaskError("S3.S3Exception", f"object {key!r} is not UTF-8 text") from None

    return handler


def put_object(stack: Callable[[], Stack]) -> Callable[[Any, TaskContext], Any]:
    """Writes ``Body`` (text) at ``Key``, replacing an object there."""

    def handler(parameters: Any, context: TaskContext) -> Any:
        params = parameters if isinstance(parameters, dict) else {}
        lake = lake_bucket(stack(), params.get("Bucket"))
        key, body = params.get("Key"), params.get("Body")
        if not isinstance(key, str) or not key or key.startswith("/") or ".." in key.split("/"):
            raise TaskError("S3.InvalidRequest", f"Key: expected a relative object key, got {key!r}")
        if not isinstance(body, str):
            raise TaskError("S3.InvalidRequest", "Body: expected text")
        try:
            lake.write_bytes(key, body.encode())
        except (ConveyorError, OSError) as exc:
            raise TaskError("S3.S3Exception", str(exc)) from None
        finally:
            lake.close()
        return {}

    return handler


def register_s3(found: Integrations, stack: Callable[[], Stack]) -> None:
    found.register(LIST_OBJECTS, list_objects(stack))
    found.register(GET_OBJECT, get_object(stack))
    found.register(PUT_OBJECT, put_object(stack))
