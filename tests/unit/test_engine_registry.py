"""The one engine registry: each engine folder declares its roles, the
registry finds every folder, and each declared connector class exists."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import connectors
from conveyor.connectors import registry
from conveyor.connectors.base import EndpointConfig
from conveyor.connectors.engine import ROLE_NAMES
from conveyor.core.errors import ConfigError

ROLES = {
    "postgres": {"source", "change_source", "target", "applier", "control_tables"},
    "mysql": {"source", "change_source"},
    "sqlite": {"source", "change_source"},
    "dynamodb": {"source", "change_source"},
    "duckdb": {"target", "applier", "control_tables"},
    "lake": {"target", "applier"},
    "nats": {"target", "applier"},
}


@pytest.fixture
def fresh_registry() -> Iterator[None]:
    registry.engines.cache_clear()
    yield
    registry.engines.cache_clear()


def test_every_engine_folder_is_found_with_its_roles() -> None:
    found = registry.engines()
    assert {name: {r for r in ROLE_NAMES if e.connector(r)} for name, e in found.items()} == ROLES


@pytest.mark.parametrize("engine", sorted(ROLES))
def test_each_declared_connector_class_exists(engine: str) -> None:
    declared = registry.engines()[engine]
    for role in ROLES[engine]:
        spec = declared.connector(role)  # type: ignore[arg-type]
        assert spec is not None
        cls = registry._load(spec, engine)
        assert isinstance(cls, type) and spec.endswith(":" + cls.__name__)


def test_a_new_engine_is_one_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_registry: None
) -> None:
    folder = tmp_path / "conveyor" / "connectors" / "toy"
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text(
        "from conveyor.connectors.engine import Engine\n"
        'ENGINE = Engine("toy", source="conveyor.connectors.toy.source:ToySource")\n'
    )
    (folder / "source.py").write_text(
        "class ToySource:\n    def __init__(self, config):\n        self.config = config\n"
    )
    monkeypatch.setattr(connectors, "__path__", [*connectors.__path__, str(folder.parent)])
    monkeypatch.delitem(sys.modules, "conveyor.connectors.toy", raising=False)
    assert registry.engines_for("source") == ["dynamodb", "mysql", "postgres", "sqlite", "toy"]
    opened = registry.open_source(EndpointConfig("t", "toy", path="x"))
    assert type(opened).__name__ == "ToySource" and opened.config.name == "t"
    with pytest.raises(ConfigError, match=r"cannot be a change-capture source.*available: dynamodb, mysql"):
        registry.open_change_source(EndpointConfig("t", "toy", path="x"))
    for name in ("conveyor.connectors.toy", "conveyor.connectors.toy.source"):
        sys.modules.pop(name, None)


def test_an_engine_that_cannot_play_a_role_is_refused_with_those_that_can() -> None:
    with pytest.raises(ConfigError) as refused:
        registry.open_applier(EndpointConfig("src", "mysql", url="mysql://x"))
    assert str(refused.value) == (
        "endpoint 'src': engine 'mysql' cannot be a change target in this build "
        "(available: duckdb, lake, nats, postgres)"
    )
