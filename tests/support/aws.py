"""A stack served by `conveyor serve` with its AWS APIs on, and boto3 clients for it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from support.cli import conveyor
from support.serve import Serve
from support.servers import free_port

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart"
KEYS = {
    "CONVEYOR_AWS_ACCESS_KEY_ID": "AKIACONVEYORTEST",
    "CONVEYOR_AWS_SECRET_ACCESS_KEY": "s3cr3t/key+value",
}
TOKEN = {"CONVEYOR_API_TOKEN": "aws-api-test-token"}
SHOP_STACK = """
endpoints:
  shop-db: {engine: sqlite, path: ./data/shop.sqlite}
  warehouse: {engine: duckdb, path: ./data/warehouse.duckdb}
tasks:
  shop-load: {source: shop-db, target: warehouse, table_mappings: file://mappings.json}
"""


def shop_folder(folder: Path, stack: str = SHOP_STACK) -> Path:
    """The quickstart's SQLite shop and its mappings in ``folder``, with ``stack`` as conveyor.yaml."""
    source = folder / "data" / "shop.sqlite"
    subprocess.run([sys.executable, str(QUICKSTART / "make_source.py"), str(source)], check=True, timeout=60)
    (folder / "mappings.json").write_text((QUICKSTART / "mappings.json").read_text())
    (folder / "conveyor.yaml").write_text(stack)
    return folder / "conveyor.yaml"


@contextmanager
def served_stack(folder: Path, stack: str = SHOP_STACK, env: dict[str, str] | None = None) -> Iterator[Serve]:
    """``conveyor apply`` of ``stack`` in ``folder``, then ``conveyor serve`` with the AWS keys."""
    file = shop_folder(folder, stack)
    home = folder / "home"
    applied = conveyor(home, "apply", str(file), env=env)
    assert applied.returncode == 0, applied.stderr
    server = Serve(home, free_port(), KEYS | TOKEN | (env or {}))
    try:
        server.ready()
        yield server
    finally:
        server.kill()


def aws_client(url: str, service: str, secret: str | None = None, region: str = "us-east-1") -> Any:
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=region,
        aws_access_key_id=KEYS["CONVEYOR_AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=secret or KEYS["CONVEYOR_AWS_SECRET_ACCESS_KEY"],
        # StartSyncExecution's host prefix ("sync-") would name another host.
        config=Config(retries={"max_attempts": 1}, inject_host_prefix=False),
    )
