"""Cases of Redshift semantics checked on both warehouses."""

from __future__ import annotations

from conveyor.orchestration.redshift_sql import Statement, Warehouse, translate

# Redshift's DATEDIFF counts unit boundaries crossed between the two times.
DATEDIFF_CASES: list[tuple[str, str, dict[str, int]]] = [
    (
        "2024-01-01 23:00:00",
        "2024-01-02 01:00:00",
        {"day": 1, "month": 0, "year": 0, "quarter": 0, "hour": 2, "minute": 120},
    ),
    (
        "2024-01-31 12:00:00",
        "2024-02-01 00:00:00",
        {"day": 1, "month": 1, "year": 0, "quarter": 0, "hour": 12, "minute": 720},
    ),
    (
        "2023-12-31 23:59:59",
        "2024-01-01 00:00:00",
        {"day": 1, "month": 1, "year": 1, "quarter": 1, "hour": 1, "minute": 1},
    ),
    (
        "2024-03-15 10:30:00",
        "2024-03-15 11:29:00",
        {"day": 0, "month": 0, "year": 0, "quarter": 0, "hour": 1, "minute": 59},
    ),
    (
        "2024-05-20 00:00:00",
        "2023-02-10 00:00:00",
        {"day": -465, "month": -15, "year": -1, "quarter": -5, "hour": -11160, "minute": -669600},
    ),
]


def datediff_sql(unit: str, start: str, end: str, warehouse: Warehouse) -> str:
    (statement,) = translate(f"select datediff({unit}, '{start}', '{end}')", warehouse)
    assert isinstance(statement, Statement)
    return statement.sql
