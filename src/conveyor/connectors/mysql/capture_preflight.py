"""What a MariaDB/MySQL server must allow before its binlog can be captured:
the binlog settings and the replication privileges, each problem with how to
fix it."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

# Binlog settings capture needs: variable -> required value. binlog_row_metadata
# exists from MariaDB 10.5 / MySQL 8.0.1 and is only checked where it exists.
REQUIRED_SETTINGS: dict[str, str] = {
    "log_bin": "ON",
    "binlog_format": "ROW",
    "binlog_row_image": "FULL",
    "binlog_row_metadata": "FULL",
}
_OPTIONAL_SETTINGS = frozenset({"binlog_row_metadata"})
# How each setting is changed: log_bin only at server start; the others at run
# time too (new sessions), and in the configuration file to outlive a restart.
_HOW_TO_SET: dict[str, str] = {
    "log_bin": "log_bin under [mysqld] in the server's configuration, then restart the server",
    "binlog_format": "SET GLOBAL binlog_format = 'ROW', and binlog_format=ROW under [mysqld]",
    "binlog_row_image": "SET GLOBAL binlog_row_image = 'FULL', and binlog_row_image=FULL under [mysqld]",
    "binlog_row_metadata": (
        "SET GLOBAL binlog_row_metadata = 'FULL', and binlog_row_metadata=FULL under [mysqld]"
    ),
}


def setting_problems(variables: Mapping[str, str]) -> list[str]:
    """Each binlog setting that prevents capture, with its current and required
    value. ``variables`` is SHOW VARIABLES as a dict (names in any case)."""
    values = {name.lower(): str(value) for name, value in variables.items()}
    problems = []
    for name, required in REQUIRED_SETTINGS.items():
        current = values.get(name)
        if current is None:
            if name in _OPTIONAL_SETTINGS:
                continue
            problems.append(f"{name} is not set (needs {required}: {_HOW_TO_SET[name]})")
        elif current.upper() != required and not (required == "ON" and current == "1"):
            problems.append(f"{name} is {current} (needs {required}: {_HOW_TO_SET[name]})")
    return problems


def grant_problems(grants: Sequence[str]) -> list[str]:
    """The replication privileges SHOW GRANTS lacks, or [] when they are there or
    cannot be told (privileges granted through a role)."""
    on_all = [g.upper() for g in grants if re.search(r"\bON\s+\*\.\*\s+TO\b", g, re.IGNORECASE)]
    if any("ALL PRIVILEGES" in g for g in on_all):
        return []
    if any(re.match(r"^\s*GRANT\s+[`'\"]", g) for g in grants):
        return []  # a role: its privileges are not listed here
    text = " ".join(on_all)
    problems = []
    if not re.search(r"\bREPLICATION (SLAVE|REPLICA)\b", text):
        problems.append("the user lacks REPLICATION SLAVE (GRANT REPLICATION SLAVE ON *.* TO ...)")
    if not re.search(r"\b(REPLICATION CLIENT|BINLOG MONITOR|SUPER)\b", text):
        problems.append(
            "the user lacks REPLICATION CLIENT (MariaDB: BINLOG MONITOR) (GRANT ... ON *.* TO ...)"
        )
    return problems


def capture_problems_message(endpoint: str, problems: Sequence[str]) -> str:
    return f"endpoint {endpoint!r}: the binlog cannot be captured: " + "; ".join(problems)
