"""A DynamoDB client for reading: throttling retried, read capacity budgeted,
Scan pages handed over as raw JSON.

* Credentials: the endpoint's ``settings`` (``aws_access_key_id``,
  ``aws_secret_access_key``, ``aws_session_token``, ``profile``; secret
  references are resolved by the stack) or, when absent, boto3's usual chain
  (environment, shared config, instance role). Region: ``region``, else the
  environment, else ``us-east-1``. ``endpoint_url`` points at a
  DynamoDB-compatible server (DynamoDB Local, moto, ScyllaDB Alternator).
* Throttling (ProvisionedThroughputExceededException, RequestLimitExceeded,
  ThrottlingException), 5xx answers and dropped connections are retried with
  exponential backoff and full jitter (``sleep = uniform(0, min(cap, base *
  2**attempt))``), at most ``max_attempts`` times per call (settings
  ``retry_base_seconds`` 0.05, ``retry_cap_seconds`` 5, ``max_attempts`` 10);
  botocore's own retries are off so the budget is ours alone.
* Read capacity budget (setting ``read_capacity_per_second``): every Scan asks
  for ``ReturnConsumedCapacity=TOTAL`` and the units it consumed are taken
  from a token bucket refilled at that rate (burst: one second's worth); a
  request waits while the bucket is empty. The bucket is shared by the
  segments of a parallel scan.
* Scan pages are not parsed by botocore: a ``before-parse`` hook keeps the
  response body and hands it over raw, so Arrow's JSON reader parses the items
  (``flatten.read_page``) instead of Python.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import (  # type: ignore[import-untyped]
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from conveyor.connectors.base import EndpointConfig
from conveyor.connectors.dynamodb.flatten import Page, PageReader
from conveyor.core.errors import ConfigError, ConnectionFailed, TransientError

THROTTLING = frozenset(
    {"ProvisionedThroughputExceededException", "RequestLimitExceeded", "ThrottlingException"}
)
_AUTH = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "AccessDeniedException",
        "MissingAuthenticationToken",
    }
)
_RAW = "ConveyorRawBody"


def endpoint_settings(config: EndpointConfig) -> dict[str, Any]:
    """The endpoint's ``settings`` (where a stack puts them), with top-level options as fallback."""
    merged = {k: v for k, v in config.options.items() if k != "settings"}
    nested = config.options.get("settings") or {}
    if not isinstance(nested, Mapping):
        raise ConfigError(f"endpoint {config.name!r}: settings must be a mapping")
    merged.update(nested)
    return merged


@dataclass
class Backoff:
    """Exponential backoff with full jitter, bounded in attempts."""

    base: float = 0.05
    cap: float = 5.0
    max_attempts: int = 10
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        return self.rng.uniform(0.0, min(self.cap, self.base * 2**attempt))


class TokenBucket:
    """Read units per second: ``take`` waits while the bucket is empty; ``spend``
    debits what a request consumed (it may go negative: the next waits longer)."""

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ConfigError(f"read_capacity_per_second must be positive, not {rate}")
        self.rate = rate
        self.burst = rate
        self.tokens = rate
        self._clock = clock
        self._sleep = sleep
        self._last = clock()
        self._lock = threading.Lock()
        self.waited = 0.0

    def _refill(self) -> None:
        now = self._clock()
        self.tokens = min(self.burst, self.tokens + (now - self._last) * self.rate)
        self._last = now

    def take(self) -> None:
        while True:
            with self._lock:
                self._refill()
                if self.tokens > 0:
                    return
                wait = -self.tokens / self.rate + 1e-3
            self.waited += wait
            self._sleep(wait)

    def spend(self, units: float) -> None:
        with self._lock:
            self._refill()
            self.tokens -= units


class DynamoClient:
    """The calls the source makes, with retries and the read budget."""

    def __init__(self, config: EndpointConfig, backoff: Backoff | None = None) -> None:
        self.config = config
        settings = endpoint_settings(config)
        self.settings = settings
        self.endpoint_url: str | None = settings.get("endpoint_url")
        region = (
            settings.get("region") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        )
        self.region = str(region or "us-east-1")
        self.backoff = backoff or Backoff(
            base=float(settings.get("retry_base_seconds", 0.05)),
            cap=float(settings.get("retry_cap_seconds", 5.0)),
            max_attempts=int(settings.get("max_attempts", 10)),
        )
        rate = settings.get("read_capacity_per_second")
        self.budget = TokenBucket(float(rate)) if rate is not None else None
        self.retries = 0
        secret = settings.get("aws_secret_access_key") or config.password
        session = boto3.session.Session(
            aws_access_key_id=settings.get("aws_access_key_id"),
            aws_secret_access_key=secret if settings.get("aws_access_key_id") else None,
            aws_session_token=settings.get("aws_session_token"),
            profile_name=settings.get("profile"),
            region_name=self.region,
        )
        boto_config = Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=float(settings.get("connect_timeout_seconds", 10)),
            read_timeout=float(settings.get("read_timeout_seconds", 60)),
            max_pool_connections=max(10, int(settings.get("total_segments", 4)) * 2),
        )
        self._session, self._boto_config = session, boto_config
        self._client = session.client("dynamodb", endpoint_url=self.endpoint_url, config=boto_config)
        self._client.meta.events.register("before-parse.dynamodb.Scan", _keep_raw_body)

    @property
    def where(self) -> str:
        return self.endpoint_url or f"DynamoDB in {self.region}"

    def call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        """Call ``operation``, retrying throttling and transient failures."""
        method = getattr(self._client, operation)
        attempt = 0
        while True:
            try:
                result: dict[str, Any] = method(**kwargs)
                return result
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code", ""))
                status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
                if code in _AUTH:
                    raise ConnectionFailed(
                        f"endpoint {self.config.name!r}: {self.where} refused the credentials ({code})"
                    ) from None
                if code == "ResourceNotFoundException":
                    message = exc.response["Error"].get("Message", code)
                    raise ConfigError(f"endpoint {self.config.name!r}: {operation}: {message}") from None
                if code not in THROTTLING and status < 500:
                    raise ConnectionFailed(
                        f"endpoint {self.config.name!r}: {operation} failed: {exc}"
                    ) from None
                reason = f"{code or status}"
            except (EndpointConnectionError, BotoConnectionError) as exc:
                reason = str(exc)
            except BotoCoreError as exc:
                raise ConnectionFailed(f"endpoint {self.config.name!r}: {operation} failed: {exc}") from None
            attempt += 1
            if attempt >= self.backoff.max_attempts:
                raise TransientError(
                    f"endpoint {self.config.name!r}: {operation} still failing after "
                    f"{attempt} attempts: {reason}"
                )
            self.retries += 1
            self.backoff.sleep(self.backoff.delay(attempt))

    def list_tables(self) -> list[str]:
        names: list[str] = []
        start: str | None = None
        while True:
            kwargs: dict[str, Any] = {"ExclusiveStartTableName": start} if start else {}
            page = self.call("list_tables", **kwargs)
            names += page.get("TableNames", [])
            start = page.get("LastEvaluatedTableName")
            if not start:
                return names

    def describe(self, table: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call("describe_table", TableName=table)["Table"]
        return result

    def scan_page(
        self,
        table: str,
        *,
        start_key: Mapping[str, Any] | None = None,
        segment: int | None = None,
        total_segments: int | None = None,
        limit: int | None = None,
        consistent: bool = False,
        reader: PageReader | None = None,
        expression: Mapping[str, Any] | None = None,
    ) -> Page:
        """One Scan request; the page's items parsed by Arrow from the raw body.
        ``expression`` adds Scan parameters such as ``FilterExpression``,
        ``ProjectionExpression`` and their attribute names and values."""
        kwargs: dict[str, Any] = {"TableName": table, "ReturnConsumedCapacity": "TOTAL"}
        if expression:
            kwargs.update(expression)
        if start_key:
            kwargs["ExclusiveStartKey"] = dict(start_key)
        if segment is not None and total_segments is not None and total_segments > 1:
            kwargs["Segment"], kwargs["TotalSegments"] = segment, total_segments
        if limit:
            kwargs["Limit"] = limit
        if consistent:
            kwargs["ConsistentRead"] = True
        if self.budget is not None:
            self.budget.take()
        response = self.call("scan", **kwargs)
        body = response.get(_RAW)
        if body is None:  # pragma: no cover - the hook did not run (another botocore)
            raise ConnectionFailed(f"endpoint {self.config.name!r}: Scan answered without a body")
        page = (reader or PageReader()).read_page(body)
        if self.budget is not None:
            self.budget.spend(page.consumed or 0.5)
        return page

    def streams_client(self) -> Any:
        """A DynamoDB Streams client with the same credentials, region and endpoint."""
        return self._session.client(
            "dynamodbstreams", endpoint_url=self.endpoint_url, config=self._boto_config
        )

    def close(self) -> None:
        self._client.close()


def _keep_raw_body(response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any) -> None:
    """before-parse hook: keep a successful Scan's body for Arrow and give
    botocore an empty document to parse (it would build Python objects per value)."""
    if response_dict.get("status_code") == 200 and isinstance(response_dict.get("body"), bytes):
        customized_response_dict[_RAW] = response_dict["body"]
        response_dict["body"] = b"{}"
