"""The EXPRESS time limit: five minutes, which CONVEYOR_EXPRESS_MAX_SECONDS may lower, never raise."""

from __future__ import annotations

import pytest

from conveyor.core.errors import ConfigError
from conveyor.orchestration.executions import EXPRESS_MAX_SECONDS, express_max_seconds


@pytest.mark.parametrize(("value", "limit"), [("", 300), ("2", 2), (" 60 ", 60), ("600", 300)])
def test_the_limit_may_only_be_lowered(monkeypatch: pytest.MonkeyPatch, value: str, limit: int) -> None:
    monkeypatch.setenv("CONVEYOR_EXPRESS_MAX_SECONDS", value)
    assert EXPRESS_MAX_SECONDS == 300
    assert express_max_seconds() == limit


@pytest.mark.parametrize("value", ["0", "soon", "-5", "1.5"])
def test_a_bad_limit_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CONVEYOR_EXPRESS_MAX_SECONDS", value)
    with pytest.raises(ConfigError, match="CONVEYOR_EXPRESS_MAX_SECONDS"):
        express_max_seconds()
