"""A PostgreSQL table with a column of every type the capture tests exercise."""

TYPES_DDL = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy ''quoted'', yes');
CREATE TABLE typed (
    id integer PRIMARY KEY,
    i2 smallint, i8 bigint, n12 numeric(12,2), nu numeric,
    f4 real, f8 double precision,
    t text, vc varchar(20), ch char(3), b bytea, bo boolean,
    d date, tm time, ts timestamp, tstz timestamptz, iv interval,
    u uuid, j json, jb jsonb,
    ia integer[], ta text[], m mood, ma mood[], addr inet
);
"""
