"""A moto server on loopback for the AWS-style APIs (S3, DynamoDB and Streams)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from support.servers import free_port

DUMMY_CREDENTIALS = {
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@contextmanager
def running_moto() -> Iterator[str]:
    """Start moto on a free loopback port with dummy credentials in the
    environment (restored afterwards); yields its URL."""
    from moto.server import ThreadedMotoServer

    saved = {key: os.environ.get(key) for key in DUMMY_CREDENTIALS}
    os.environ.update(DUMMY_CREDENTIALS)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
