"""Optional extras: ``pip install 'conveyor[postgres,mysql,dynamodb,lake,server]'``.

The core package runs SQLite sources into DuckDB and a local lake's raw files;
every other engine and the server need their extra. The code that needs one
imports its driver where it is used, inside :func:`needs_extra`, so a missing
driver is a clear error naming the extra to install, never an ImportError.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from conveyor.core.errors import ConfigError

PACKAGES: dict[str, str] = {
    "psycopg": "postgres",
    "psycopg2": "postgres",
    "psycopg_binary": "postgres",
    "adbc_driver_postgresql": "postgres",
    "adbc_driver_manager": "postgres",
    "pymysql": "mysql",
    "pymysqlreplication": "mysql",
    "boto3": "dynamodb",
    "botocore": "dynamodb",
    "deltalake": "lake",
    "fastapi": "server",
    "starlette": "server",
    "uvicorn": "server",
    "prometheus_client": "server",
    "jinja2": "server",
    "nats": "nats",
    "pyspark": "spark",
}
"""Top-level modules of the optional dependencies, and the extra that installs each."""


class MissingExtra(ConfigError):
    def __init__(self, what: str, extra: str, module: str) -> None:
        super().__init__(
            f"{what} needs the {extra!r} extra (module {module!r} is not installed): "
            f"pip install 'conveyor[{extra}]'"
        )
        self.extra = extra


@contextmanager
def needs_extra(what: str, extra: str | None = None) -> Iterator[None]:
    """Turn the import of a missing optional dependency inside the block into a
    :class:`MissingExtra` naming ``what`` needs it and the extra (by default the
    one the missing module belongs to). Other import errors pass through."""
    try:
        yield
    except ModuleNotFoundError as exc:
        module = (exc.name or "").partition(".")[0]
        owner = PACKAGES.get(module)
        if owner is None:
            raise
        raise MissingExtra(what, extra or owner, module) from None
