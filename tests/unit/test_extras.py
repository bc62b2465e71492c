"""A missing optional dependency is an error naming the extra to install."""

from __future__ import annotations

import pytest

from conveyor.core.errors import ConfigError
from conveyor.core.extras import MissingExtra, needs_extra


def test_a_missing_driver_names_its_extra() -> None:
    with (
        pytest.raises(
            MissingExtra, match=r"the mysql engine needs the 'mysql' extra .*conveyor\[mysql\]"
        ) as raised,
        needs_extra("the mysql engine"),
    ):
        raise ModuleNotFoundError("No module named 'pymysql'", name="pymysql")
    assert isinstance(raised.value, ConfigError) and raised.value.extra == "mysql"


def test_the_caller_can_name_the_extra() -> None:
    named = r"conveyor serve needs the 'server' extra \(module 'botocore'"
    with pytest.raises(MissingExtra, match=named), needs_extra("conveyor serve", "server"):
        raise ModuleNotFoundError("No module named 'botocore.auth'", name="botocore.auth")


def test_other_import_errors_pass_through() -> None:
    with pytest.raises(ModuleNotFoundError, match="no_such_module"), needs_extra("anything"):
        import no_such_module  # type: ignore[import-not-found]  # noqa: F401
