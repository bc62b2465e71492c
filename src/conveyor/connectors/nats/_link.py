"""What the nats target and applier share: the endpoint's settings, a
connection opened on first use (with the stream made sure of), and what the
envelopes say of the source."""

from __future__ import annotations

import os
from datetime import datetime
from urllib.parse import urlsplit

from conveyor.connectors.base import EndpointConfig
from conveyor.connectors.nats.client import NatsLink
from conveyor.connectors.nats.envelope import SourceInfo
from conveyor.connectors.nats.settings import NatsSettings, nats_settings


class NatsEndpoint:
    engine = "nats"

    def __init__(self, config: EndpointConfig) -> None:
        self.config = config
        self.settings: NatsSettings = nats_settings(config)
        self.source = SourceInfo()
        self._link: NatsLink | None = None

    @property
    def link(self) -> NatsLink:
        if self._link is None:
            link = NatsLink(self.settings)
            try:
                link.ensure_stream()
            except BaseException:
                link.close()
                raise
            self._link = link
        return self._link

    def describe_source(self, task: str, source: EndpointConfig) -> None:
        self.source = SourceInfo(name=source.name, db=_database(source), task=task)

    def check(self) -> str:
        return self.link.server_version()

    def close(self) -> None:
        if self._link is not None:
            self._link.close()
            self._link = None


def _database(source: EndpointConfig) -> str | None:
    if source.url:
        name = urlsplit(source.url).path.lstrip("/")
        return name or None
    if source.path:
        return os.path.basename(source.path)
    return None


def epoch_ms(when: datetime | None) -> int | None:
    return None if when is None else int(when.timestamp() * 1000)
