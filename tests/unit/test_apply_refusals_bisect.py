"""How the PostgreSQL applier finds the rows its target refuses in a refused
batch (connectors/postgres/apply_refusals.py): by halves, each refused row
alone, in few attempts. The real server's part is in
tests/integration/test_postgres_cdc_refusals.py."""

from __future__ import annotations

import psycopg
import pytest

from conveyor.connectors.postgres.apply_refusals import _bisect, _Part


def _part(size: int, refused: set[int], tried: list[list[int]]) -> tuple[_Part, list[int]]:
    taken: list[int] = []

    def build(rows: list[int]) -> list[int]:
        return rows

    part = _Part(size, build, lambda row: {"id": row}, {})  # type: ignore[arg-type]

    def attempt(rows: list[int]) -> psycopg.Error | None:
        tried.append(rows)
        if refused & set(rows):
            return psycopg.DataError(f"refused {sorted(refused & set(rows))}")
        taken.extend(rows)
        return None

    _bisect(part, attempt)  # type: ignore[arg-type]
    return part, taken


@pytest.mark.parametrize(
    ("size", "refused", "most_attempts"),
    [
        (1, set(), 1),
        (1, {0}, 1),
        (10, set(), 1),
        (10, {3}, 2 * 4 + 1),
        (1024, {0, 1023}, 2 * 2 * 10 + 1),
        (1000, set(range(0, 1000, 100)), 2 * 10 * 10 + 1),
        (7, set(range(7)), 2 * 7 - 1),
    ],
)
def test_each_refused_row_is_found_alone_and_the_rest_taken_in_order(
    size: int, refused: set[int], most_attempts: int
) -> None:
    tried: list[list[int]] = []
    part, taken = _part(size, refused, tried)
    assert set(part.refused) == refused
    assert taken == [i for i in range(size) if i not in refused]  # each once, in order
    assert len(tried) <= most_attempts
