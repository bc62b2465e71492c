"""Changing one endpoint of the applied stack in place: `conveyor endpoints
modify` and the state machines' ``modifyEndpoint`` integration.

The change lives in the metadata store's copy of the stack until the next
``conveyor apply`` of a file that declares the endpoint (that file wins).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from conveyor.core.errors import ConfigError, ConveyorError, NotFoundError
from conveyor.core.names import did_you_mean
from conveyor.stack.model import Stack

if TYPE_CHECKING:
    from conveyor.store.store import Store

EndpointChange = Callable[[dict[str, Any]], None]
SETTINGS_PREFIX = "settings."


def modify_endpoint(store: Store, name: str, change: EndpointChange, origin: str) -> Stack:
    """Apply ``change`` to endpoint ``name``'s stored body (a dict with its
    ``settings`` copied), validate the whole stack again and store it. A change
    that makes the stack invalid is refused and stores nothing."""
    stored = store.stack_document()
    if stored is None:
        raise ConveyorError("nothing is applied yet: run `conveyor apply conveyor.yaml` first")
    stack = Stack.from_store_dict(stored)
    if name not in stack.endpoints:
        raise NotFoundError(f"no endpoint named {name!r}" + did_you_mean(name, stack.endpoints))
    document = stack.to_store_dict()
    body = dict(document["endpoints"][name])
    body["settings"] = dict(body.get("settings") or {})
    change(body)
    document["endpoints"][name] = {k: v for k, v in body.items() if v is not None}
    updated = Stack.from_store_dict(document, origin=origin)
    store.put_stack_document(updated.to_store_dict())
    return updated


def assignments(set_: Sequence[str], unset: Sequence[str]) -> EndpointChange:
    """The change ``--set KEY=VALUE`` and ``--unset KEY`` options describe.
    ``KEY`` is an endpoint key (``bucket_path``, ``url`` ...) or
    ``settings.<Name>``; a settings value that reads as JSON (true, 64, a
    quoted string) is taken as that, otherwise as the text written."""
    pairs: list[tuple[str, Any]] = []
    for item in set_:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE (e.g. bucket_path=raw/2026/11/23)")
        key = key.strip()
        pairs.append((key, _setting_value(value) if key.startswith(SETTINGS_PREFIX) else value))
    for key in unset:
        if key.strip() in {"", "engine"}:
            raise ConfigError(f"--unset {key!r}: name a key other than engine")
        pairs.append((key.strip(), None))

    def change(body: dict[str, Any]) -> None:
        for key, value in pairs:
            if key.startswith(SETTINGS_PREFIX):
                setting = key[len(SETTINGS_PREFIX) :]
                if not setting:
                    raise ConfigError(f"{key!r}: name a setting after 'settings.'")
                if value is None:
                    body["settings"].pop(setting, None)
                else:
                    body["settings"][setting] = value
            elif key == "settings":
                raise ConfigError("set settings one by one: settings.<Name>=<value>")
            else:
                body[key] = value

    return change


def _setting_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text
