"""A synchronous face on nats-py's asyncio client: one event loop in a
background thread per endpoint connection, which every caller's thread (the
full load's table threads, the change applier's thread) hands coroutines to.

Publishing waits for JetStream's acknowledgement of every message before it
returns (async publishes, at most ``max_in_flight`` unacknowledged), so a
caller that goes on to store a checkpoint never runs ahead of the stream.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Coroutine, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.js.api import StorageType

from conveyor.connectors.nats.envelope import Message
from conveyor.connectors.nats.settings import NatsSettings
from conveyor.core.errors import ConfigError, ConnectionFailed, TransientError

log = logging.getLogger(__name__)
T = TypeVar("T")
MSG_ID = "Nats-Msg-Id"


class NatsLink:
    """A connection to NATS with JetStream: the endpoint's stream made sure of
    (created when missing, checked when present) and its checkpoint bucket."""

    def __init__(self, settings: NatsSettings) -> None:
        self.settings = settings
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="nats-loop", daemon=True)
        self._thread.start()
        self._nc: Any = None
        self._js: Any = None
        self._kv: Any = None
        try:
            self._run(self._connect(), settings.connect_timeout_seconds * 3 + 5)
        except BaseException:
            self.close()
            raise

    # --- plumbing ---------------------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except FutureTimeout:
            future.cancel()
            raise TransientError(f"NATS did not answer within {timeout:.0f} s") from None

    async def _connect(self) -> None:
        s = self.settings

        async def on_error(exc: Exception) -> None:
            log.warning("nats: %s", exc)

        kwargs: dict[str, Any] = {
            "servers": s.servers,
            "connect_timeout": max(1, int(s.connect_timeout_seconds)),
            "max_reconnect_attempts": 5,
            "reconnect_time_wait": 1,
            "error_cb": on_error,
            "name": "conveyor",
        }
        if s.user is not None:
            kwargs["user"], kwargs["password"] = s.user, s.password
        if s.token:
            kwargs["token"] = s.token
        if s.credentials_file:
            kwargs["user_credentials"] = s.credentials_file
        try:
            self._nc = await nats.connect(**kwargs)
        except (nats.errors.NoServersError, OSError, nats.errors.Error) as exc:
            raise ConnectionFailed(f"cannot connect to NATS at {', '.join(s.servers)}: {exc}") from None
        self._js = self._nc.jetstream(
            timeout=s.publish_timeout_seconds, publish_async_max_pending=s.max_in_flight
        )
        try:
            await self._js.account_info()
        except nats.errors.Error as exc:
            raise ConfigError(
                f"NATS at {', '.join(s.servers)} has no JetStream (start it with -js): {exc}"
            ) from None

    def server_version(self) -> str:
        info = getattr(self._nc, "_server_info", {}) or {}
        return f"NATS {info.get('version', '?')} (JetStream)"

    # --- the stream -----------------------------------------------------------

    def ensure_stream(self) -> None:
        self._run(self._ensure_stream(), self.settings.publish_timeout_seconds + 5)

    async def _ensure_stream(self) -> None:
        s = self.settings
        wanted = f"{s.subject_prefix}.>"
        try:
            info = await self._js.stream_info(s.stream)
        except nats.js.errors.NotFoundError:
            await self._js.add_stream(
                name=s.stream,
                subjects=[wanted],
                duplicate_window=s.duplicate_window_seconds,
                storage=StorageType(s.storage),
                num_replicas=s.replicas,
            )
            log.info("nats: created stream %s on %s", s.stream, wanted)
            return
        subjects = list(info.config.subjects or [])
        if not any(_covers(pattern, wanted) for pattern in subjects):
            raise ConfigError(
                f"NATS stream {s.stream!r} takes subjects {subjects}, not {wanted!r}: add it to the "
                "stream, or set the endpoint's stream or subject_prefix"
            )
        window = float(info.config.duplicate_window or 0)
        if window + 1e-6 < s.duplicate_window_seconds:
            raise ConfigError(
                f"NATS stream {s.stream!r} deduplicates over {window:g} s, less than the endpoint's "
                f"duplicate_window_seconds ({s.duplicate_window_seconds:g} s): a replay after a crash "
                "could publish changes twice; raise the stream's duplicate window or lower the setting"
            )

    def publish(self, messages: Sequence[Message]) -> int:
        """Publish in order and wait for every acknowledgement; returns how many
        the stream took as duplicates. Raises TransientError when NATS does not
        acknowledge in time (the caller publishes the same messages again)."""
        if not messages:
            return 0
        return self._run(self._publish(messages), self.settings.publish_timeout_seconds * 2 + 5)

    async def _publish(self, messages: Sequence[Message]) -> int:
        s = self.settings
        futures: list[asyncio.Future[Any]] = []
        unacked: deque[asyncio.Future[Any]] = deque()  # in publishing order, done ones not all gone yet
        try:
            for m in messages:
                if len(unacked) >= s.max_in_flight:
                    await self._stall(unacked)
                # No wait_stall: nats-py would wrap each publish in a task with a
                # timeout, which yields to the loop, and its flusher then wrote
                # each message alone. ``_stall`` bounds the wait instead.
                future = await self._js.publish_async(
                    m.subject, m.payload, stream=s.stream, headers={MSG_ID: m.msg_id}
                )
                futures.append(future)
                unacked.append(future)
            acks = await asyncio.wait_for(asyncio.gather(*futures), s.publish_timeout_seconds)
        except (TimeoutError, nats.errors.Error) as exc:
            for future in futures:
                future.cancel()
            if isinstance(exc, nats.js.errors.APIError) and not isinstance(
                exc, nats.js.errors.ServiceUnavailableError
            ):
                raise ConfigError(f"NATS stream {s.stream!r} refused a message: {exc}") from None
            raise TransientError(f"NATS did not acknowledge published changes: {exc!r}") from None
        return sum(1 for ack in acks if ack.duplicate)

    async def _stall(self, unacked: deque[asyncio.Future[Any]]) -> None:
        """Wait until fewer than ``max_in_flight`` publishes may be
        unacknowledged (JetStream acknowledges a stream's messages in order:
        the oldest first); TimeoutError when the oldest is not acknowledged
        within the publish timeout."""
        while unacked and unacked[0].done():
            unacked.popleft()
        if len(unacked) < self.settings.max_in_flight:
            return
        done, _ = await asyncio.wait([unacked[0]], timeout=self.settings.publish_timeout_seconds)
        if not done:
            raise TimeoutError(f"{len(unacked)} publishes unacknowledged")
        while unacked and unacked[0].done():
            unacked.popleft()

    # --- checkpoints ----------------------------------------------------------

    async def _bucket(self) -> Any:
        if self._kv is None:
            name = self.settings.checkpoint_bucket
            try:
                self._kv = await self._js.key_value(name)
            except nats.js.errors.BucketNotFoundError:
                self._kv = await self._js.create_key_value(
                    bucket=name, history=1, replicas=self.settings.replicas
                )
        return self._kv

    def read_value(self, key: str) -> bytes | None:
        return self._run(self._read_value(key), self.settings.publish_timeout_seconds + 5)

    async def _read_value(self, key: str) -> bytes | None:
        kv = await self._bucket()
        try:
            entry = await kv.get(key)
        except nats.js.errors.KeyNotFoundError:
            return None
        value: bytes | None = entry.value
        return value

    def write_value(self, key: str, value: bytes) -> None:
        self._run(self._write_value(key, value), self.settings.publish_timeout_seconds + 5)

    async def _write_value(self, key: str, value: bytes) -> None:
        kv = await self._bucket()
        await kv.put(key, value)

    def close(self) -> None:
        if self._nc is not None and not self._nc.is_closed:
            try:
                self._run(self._nc.close(), 10)
            except Exception as exc:  # closing is best effort
                log.debug("nats: close: %s", exc)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()


def _covers(pattern: str, subject: str) -> bool:
    """Whether a stream subject ``pattern`` takes every subject under ``subject``
    (a ``PREFIX.>``): the same, ``>``, or a shorter ``X.>`` that ``subject`` starts with."""
    if pattern in (subject, ">"):
        return True
    return pattern.endswith(".>") and subject.startswith(pattern[:-1])
