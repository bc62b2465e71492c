"""The account and region in the ARNs Conveyor gives its objects.

``arn:aws:dms:REGION:ACCOUNT:task:NAME`` and the like, as the services shape them,
with ``CONVEYOR_AWS_ACCOUNT_ID`` (12 digits, default ``000000000000``) and
``CONVEYOR_AWS_REGION`` (default ``local``) read once when Conveyor is imported.
Every process of one installation (serve, workers, the CLI) must see the same values,
since ARNs are stored in events and execution records: keep them in the environment
``conveyor serve`` and the workers it starts share.
"""

from __future__ import annotations

import os
import re

from conveyor.core.errors import ConfigError

DEFAULT_ACCOUNT = "000000000000"
DEFAULT_REGION = "local"


def _account() -> str:
    value = os.environ.get("CONVEYOR_AWS_ACCOUNT_ID", "").strip() or DEFAULT_ACCOUNT
    if not re.fullmatch(r"\d{12}", value):
        raise ConfigError(f"CONVEYOR_AWS_ACCOUNT_ID={value!r}: an account id is 12 digits")
    return value


def _region() -> str:
    value = os.environ.get("CONVEYOR_AWS_REGION", "").strip() or DEFAULT_REGION
    if not re.fullmatch(r"[a-z][a-z0-9-]{1,30}", value):
        raise ConfigError(f"CONVEYOR_AWS_REGION={value!r}: a region is lowercase, as us-east-1")
    return value


ACCOUNT = _account()
REGION = _region()


def arn(service: str, resource: str) -> str:
    """``arn:aws:SERVICE:REGION:ACCOUNT:RESOURCE``."""
    return f"arn:aws:{service}:{REGION}:{ACCOUNT}:{resource}"
