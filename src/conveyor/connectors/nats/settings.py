"""A nats endpoint's settings, read from its ``EndpointConfig`` (the stack
file's ``url``, ``password`` and ``settings``; see stack.endpoint_options)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from conveyor.connectors.base import EndpointConfig
from conveyor.core.errors import ConfigError

_SUBJECT_TOKEN = re.compile(r"^[^\s.*>]+$")
_STREAM_NAME = re.compile(r"^[^\s.*>/\\]+$")
_BUCKET = re.compile(r"^[a-zA-Z0-9_-]+$")


@dataclass(frozen=True)
class NatsSettings:
    servers: list[str]
    stream: str
    subject_prefix: str
    duplicate_window_seconds: float
    max_in_flight: int
    publish_timeout_seconds: float
    connect_timeout_seconds: float
    checkpoint_bucket: str
    storage: str
    replicas: int
    user: str | None = None
    password: str | None = None
    token: str | None = None
    credentials_file: str | None = None

    def __repr__(self) -> str:  # never the secrets
        return f"NatsSettings(servers={self.servers!r}, stream={self.stream!r})"


def nats_settings(config: EndpointConfig) -> NatsSettings:
    options = config.options
    if not config.url:
        raise ConfigError(f"endpoint {config.name!r}: a nats endpoint needs url (nats://HOST:4222)")
    servers: list[str] = []
    user: str | None = None
    for part in (p.strip() for p in config.url.split(",")):
        if not part:
            continue
        parts = urlsplit(part)
        if parts.scheme not in ("nats", "tls"):
            raise ConfigError(f"endpoint {config.name!r}: {part!r} is not a nats:// or tls:// URL")
        userinfo, at, hostport = parts.netloc.rpartition("@")
        if at:
            user = unquote(userinfo.partition(":")[0]) or user
        servers.append(f"{parts.scheme}://{hostport}")
    if not servers:
        raise ConfigError(f"endpoint {config.name!r}: url names no server")
    prefix = str(options.get("subject_prefix") or "conveyor")
    if not all(_SUBJECT_TOKEN.match(token) for token in prefix.split(".")):
        raise ConfigError(
            f"endpoint {config.name!r}: subject_prefix {prefix!r} is not a subject "
            "(dot-separated tokens without spaces, '*' or '>')"
        )
    stream = str(options.get("stream") or "CONVEYOR")
    if not _STREAM_NAME.match(stream):
        raise ConfigError(f"endpoint {config.name!r}: stream {stream!r} is not a valid stream name")
    bucket = str(options.get("checkpoint_bucket") or "conveyor_checkpoints")
    if not _BUCKET.match(bucket):
        raise ConfigError(
            f"endpoint {config.name!r}: checkpoint_bucket {bucket!r} is not a valid bucket name"
        )
    return NatsSettings(
        servers=servers,
        stream=stream,
        subject_prefix=prefix,
        duplicate_window_seconds=float(options.get("duplicate_window_seconds", 7200)),
        max_in_flight=int(options.get("max_in_flight", 1000)),
        publish_timeout_seconds=float(options.get("publish_timeout_seconds", 30)),
        connect_timeout_seconds=float(options.get("connect_timeout_seconds", 5)),
        checkpoint_bucket=bucket,
        storage=str(options.get("storage", "file")),
        replicas=int(options.get("replicas", 1)),
        user=user,
        password=config.password,
        token=options.get("token"),
        credentials_file=options.get("credentials_file"),
    )
