"""Lake curation benchmark: ``conveyor lake process`` against a hand-written DuckDB merge.

The parent writes the raw area of a local lake endpoint once, outside every
timing, the way the lake target writes it: one ``--rows`` full-load file
(``LOAD00000001.parquet`` or ``.csv``, written by ``LakeTarget``) of
``sales.orders`` and ``--changes`` change rows in 10 change files named by
their timestamp, ``Op`` first: 60 % updates and 20 % deletes of random
existing keys, 20 % inserts of new keys drawn from half as many values, so
keys repeat inside and across files. Columns: bigint ``id`` (primary key),
``region`` (4 values, the partition key), bigint ``customer_id``, bigint
``qty``, ~40-character ``note``.

Cases, each ``--rounds`` times, the two sides alternated (reference first in
odd rounds, Conveyor first in even rounds):

  full-and-changes  Conveyor: ``process`` on an empty curated area: the full
                    load and every change file into a new Delta table
                    partitioned by region (one overwrite commit).
                    Reference: one DuckDB statement from the same raw files:
                    the last change per key (``QUALIFY row_number() OVER
                    (PARTITION BY id ORDER BY file, row DESC)``), the load
                    ``ANTI JOIN`` it, ``UNION ALL`` the surviving images,
                    ``COPY ... TO (FORMAT parquet, PARTITION_BY (region))``.
  merge             Conveyor: ``process`` of the change files only, into the
                    existing 1M-row curated table (one Delta ``MERGE``); the
                    table is rebuilt from the full load before every round,
                    outside the timing. Reference: the same statement with
                    the previous curated state (DuckDB's own partitioned
                    Parquet of the full load, written once) in place of the
                    load file, to a new folder.

With ``--engine spark`` a third side runs in every round: ``conveyor lake
process --engine spark`` on a Spark standalone cluster (one master, one worker
with every core) that the bench starts on loopback with pyspark's own
launcher. Its time is taken after the Spark session is up (the session's start
is reported apart), and its ratio is given against the embedded engine of the
same run (spark / embedded). Its result is checked like the others.

Both sides run in a child process of their own (``bench/curate.py child
...``), reaped with ``os.wait4``: the peak RSS of each is its own. Times are
measured inside the child (Conveyor: from opening the lake to ``process``
returning, controller written; reference: from ``duckdb.connect`` to the
``COPY`` done), medians of the rounds; the ratio is Conveyor / reference
(target <= 1.5x).

Every run is checked outside the timing: the curated Delta table and the
reference's Parquet must have the same row count and the same checksum (the
sum of DuckDB's ``hash`` of every row), and the row count must equal the one
computed from the generated operations with NumPy. A mismatch, a non-zero
exit or a step past its timeout fails the bench (exit status 1) after
printing what was measured.

    .venv/bin/python bench/curate.py --rows 1000000 --changes 200000 --rounds 3 --format parquet
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.common import BenchFailure, log, num, render_table  # noqa: E402
from bench.common import run_child as common_run_child  # noqa: E402

if str(REPO / "tests") not in sys.path:  # the Spark cluster launcher the tests use
    sys.path.insert(0, str(REPO / "tests"))

CASES = ("full-and-changes", "merge")
RESULTS_DIR = REPO / "bench" / "results"
RATIO_TARGET = 1.5
SCHEMA, NAME = "sales", "orders"
TABLE = f"{SCHEMA}.{NAME}"
BUCKET_PATH = "raw"
CURATED = "curated"
CHANGE_FILES = 10
REGIONS = ("eu", "us", "ap", "sa")
COLUMNS = ("id", "region", "customer_id", "qty", "note")
DUCK_TYPES = {
    "id": "BIGINT",
    "region": "VARCHAR",
    "customer_id": "BIGINT",
    "qty": "BIGINT",
    "note": "VARCHAR",
}
SENTINEL_FILE = "99999999-999999999"
"""A LastIncrementalFile after every change file: the merge case's preparation
takes the full load only."""


# --- results -----------------------------------------------------------------------


@dataclass
class Run:
    seconds: float  # measured inside the child
    process_seconds: float  # the child's wall time, interpreter start and imports included
    peak_rss_mb: float  # the child's own ru_maxrss
    rows: int  # rows of the result (curated table or reference Parquet)
    checksum: str
    detail: dict[str, Any] = field(default_factory=dict)
    cpu_seconds: float = 0.0  # the child's user + system CPU


@dataclass
class CaseResult:
    case: str
    rows: int
    changes: int
    raw_format: str
    reference_runs: list[Run] = field(default_factory=list)
    conveyor_runs: list[Run] = field(default_factory=list)
    spark_runs: list[Run] = field(default_factory=list)

    @property
    def spark_median(self) -> float | None:
        return self._median(self.spark_runs)

    @property
    def spark_ratio(self) -> float | None:
        """Spark engine / embedded engine, same run."""
        spark, embedded = self.spark_median, self.conveyor_median
        return spark / embedded if spark is not None and embedded else None

    @property
    def spark_session_median(self) -> float | None:
        starts = [r.detail.get("session_seconds") for r in self.spark_runs]
        values = [float(v) for v in starts if v is not None]
        return statistics.median(values) if values else None

    @staticmethod
    def _median(runs: list[Run]) -> float | None:
        return statistics.median(r.seconds for r in runs) if runs else None

    @property
    def reference_median(self) -> float | None:
        return self._median(self.reference_runs)

    @property
    def conveyor_median(self) -> float | None:
        return self._median(self.conveyor_runs)

    @property
    def process_median(self) -> float | None:
        if not self.conveyor_runs:
            return None
        return statistics.median(r.process_seconds for r in self.conveyor_runs)

    @property
    def ratio(self) -> float | None:
        ref, conv = self.reference_median, self.conveyor_median
        return conv / ref if ref and conv is not None else None

    @property
    def reference_rss_mb(self) -> float | None:
        return max(r.peak_rss_mb for r in self.reference_runs) if self.reference_runs else None

    @property
    def conveyor_rss_mb(self) -> float | None:
        return max(r.peak_rss_mb for r in self.conveyor_runs) if self.conveyor_runs else None

    def verdict(self) -> str:
        if self.ratio is None:
            return ""
        return "ratio ok" if self.ratio <= RATIO_TARGET else f"ratio > {RATIO_TARGET}x"

    def as_dict(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "rows": self.rows,
            "changes": self.changes,
            "raw_format": self.raw_format,
            "reference": "duckdb SQL last-op-wins merge to partitioned Parquet",
            "reference_runs": [asdict(r) for r in self.reference_runs],
            "conveyor_runs": [asdict(r) for r in self.conveyor_runs],
            "reference_median_s": self.reference_median,
            "conveyor_median_s": self.conveyor_median,
            "conveyor_process_median_s": self.process_median,
            "ratio": self.ratio,
            "ratio_target": RATIO_TARGET,
            "reference_peak_rss_mb": self.reference_rss_mb,
            "conveyor_peak_rss_mb": self.conveyor_rss_mb,
            "verdict": self.verdict(),
            "spark_runs": [asdict(r) for r in self.spark_runs],
            "spark_median_s": self.spark_median,
            "spark_session_start_median_s": self.spark_session_median,
            "spark_to_embedded_ratio": self.spark_ratio,
        }


# --- the raw area ------------------------------------------------------------------------


def endpoint_options(raw_format: str) -> dict[str, Any]:
    return {"settings": {}, "format": raw_format, "bucket_path": BUCKET_PATH}


def table_schema() -> Any:
    from conveyor.core import types as t
    from conveyor.core.schema import Column, TableRef, TableSchema
    from conveyor.core.types import Kind

    return TableSchema(
        TableRef(SCHEMA, NAME),
        (
            Column("id", t.simple(Kind.INT64), False),
            Column("region", t.simple(Kind.TEXT)),
            Column("customer_id", t.simple(Kind.INT64)),
            Column("qty", t.simple(Kind.INT64)),
            Column("note", t.simple(Kind.TEXT)),
        ),
        ("id",),
    )


def generate(lake_dir: Path, rows: int, changes: int, raw_format: str, seed: int = 7) -> dict[str, Any]:
    """Write the full load with LakeTarget and the change files with the lake's
    own layout functions; return where they are and the expected row count
    (runs in a child: the parent stays small, and a child's ru_maxrss starts
    from its parent's peak)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from conveyor.connectors.base import EndpointConfig, PrepMode
    from conveyor.connectors.lake import files
    from conveyor.connectors.lake import layout as lay
    from conveyor.connectors.lake.settings import lake_config
    from conveyor.connectors.lake.target import LakeTarget

    began = time.perf_counter()
    schema = table_schema()
    arrow_schema = schema.arrow_schema()
    rng = np.random.default_rng(seed)
    regions = pa.array(REGIONS)

    def images(ids: Any, tag: str) -> pa.Table:
        n = len(ids)
        serial = pa.array(np.arange(n, dtype=np.int64)).cast(pa.string())
        note = pc.binary_join_element_wise(f"{tag} note ", pc.utf8_lpad(serial, 28, "0"), "")
        return pa.table(
            {
                "id": pa.array(ids, pa.int64()),
                "region": regions.take(pa.array(rng.integers(0, len(REGIONS), n))),
                "customer_id": pa.array(rng.integers(0, 100_000, n), pa.int64()),
                "qty": pa.array(rng.integers(1, 1_000, n), pa.int64()),
                "note": note,
            },
            schema=arrow_schema,
        )

    config = EndpointConfig("bench-lake", "lake", path=str(lake_dir), options=endpoint_options(raw_format))
    target = LakeTarget(config)
    try:
        load = target.begin_load(schema, PrepMode.DROP_AND_CREATE)
        for batch in images(np.arange(rows, dtype=np.int64), "load").to_batches(100_000):
            load.write(batch)
        load.commit()
    finally:
        target.close()

    updates, deletes = int(changes * 0.6), int(changes * 0.2)
    inserts = changes - updates - deletes
    keys = np.concatenate(
        [
            rng.integers(0, rows, updates),
            rng.integers(0, rows, deletes),
            rows + rng.integers(0, max(1, inserts // 2), inserts),
        ]
    )
    ops = np.array(["U"] * updates + ["D"] * deletes + ["I"] * inserts)
    order = rng.permutation(changes)
    keys, ops = keys[order], ops[order]
    # The oracle's row count: deletes name existing keys only, so the result is
    # the loaded rows, minus keys whose last operation is D, plus new keys.
    last = len(keys) - 1 - np.unique(keys[::-1], return_index=True)[1]
    last_ops, last_keys = ops[last], keys[last]
    expected = rows - int(np.sum(last_ops == "D")) + int(np.sum((last_keys >= rows) & (last_ops != "D")))

    lake = lake_config(config)
    layout = lay.file_layout(lake.settings, lake.data_format, changes=True)
    data = images(keys, "change")
    when = datetime.now(UTC) + timedelta(seconds=5)
    change_files = []
    for number in range(CHANGE_FILES):
        start, stop = number * changes // CHANGE_FILES, (number + 1) * changes // CHANGE_FILES
        part = data.slice(start, stop - start).combine_chunks()
        framed = lay.frame(part.to_batches()[0], layout, pa.array(ops[start:stop]), None)
        stamp = when + timedelta(seconds=number)
        folder = lake_dir / lay.change_folder(BUCKET_PATH, lake.settings, schema.ref, stamp)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{lay.change_stamp(stamp)}.{layout.ext}"
        files.write_whole_file(str(path), framed, layout)
        change_files.append(str(path))
    folder = lake_dir / lay.table_folder(BUCKET_PATH, schema.ref)
    load_files = sorted(str(p) for p in folder.glob("LOAD*"))
    return {
        "load_files": load_files,
        "change_files": change_files,
        "expected_rows": expected,
        "seconds": time.perf_counter() - began,
    }


# --- the children --------------------------------------------------------------------------


CHILD_SIDES = ("generate", "conveyor", "spark", "prepare", "reference", "reference-base", "fingerprint")


def _child(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench/curate.py child")
    parser.add_argument("side", choices=CHILD_SIDES)
    parser.add_argument("--case", choices=CASES, default=CASES[0])
    parser.add_argument("--spec", type=Path, required=True, help="JSON: the dataset and folders")
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--of", help="fingerprint: delta:URI or parquet:FOLDER")
    args = parser.parse_args(argv)
    spec = json.loads(args.spec.read_text())
    result: dict[str, Any]
    if args.side == "generate":
        result = generate(Path(spec["lake"]), spec["rows"], spec["changes"], spec["raw_format"])
    elif args.side == "reference":
        result = _reference(spec, args.case)
    elif args.side == "reference-base":
        result = _reference_base(spec)
    elif args.side == "fingerprint":
        kind, _, where = str(args.of).partition(":")
        rows, checksum = delta_fingerprint(where) if kind == "delta" else parquet_fingerprint(where)
        result = {"rows": rows, "checksum": checksum}
    else:
        result = _conveyor(spec, args.side)
    args.result.write_text(json.dumps(result))
    return 0


def _conveyor(spec: dict[str, Any], side: str) -> dict[str, Any]:
    """``conveyor lake process`` of the one table. ``prepare``: the full load
    only (for the merge case), controller left to take every change file next."""
    from conveyor.connectors.base import EndpointConfig
    from conveyor.connectors.lake.settings import lake_config
    from conveyor.lake.controller import Controller, ControllerEntry, open_lake
    from conveyor.lake.curate import process

    config = EndpointConfig(
        "bench-lake", "lake", path=spec["lake"], options=endpoint_options(spec["raw_format"])
    )
    engine = None
    session_seconds = None
    if side == "spark":
        from conveyor.lake.spark_engine import SparkEngine

        engine = SparkEngine(spec["master"], {"spark.sql.shuffle.partitions": str(os.cpu_count() or 2)})
        started = time.perf_counter()
        engine.spark.range(1).count()  # the session and an executor up, outside the timing
        session_seconds = time.perf_counter() - started
    began = time.perf_counter()
    lake = open_lake(lake_config(config), CURATED)
    try:
        controller = Controller(lake)
        if TABLE not in controller.entries:
            controller.entries[TABLE] = ControllerEntry(TABLE, True, ("id",), ("region",))
        entry = controller.entries[TABLE]
        if side == "prepare":
            entry.last_incremental_file = SENTINEL_FILE
        controller.save()
        [result] = process(lake, controller, [TABLE], engine)
        seconds = time.perf_counter() - began
        if side == "prepare":
            entry.last_incremental_file = None
            controller.save()
    finally:
        lake.close()
        if engine is not None:
            engine.close()
    if result.status != "processed" or result.error or result.skipped:
        raise SystemExit(f"curation of {TABLE}: {json.dumps(result.as_dict())}")
    return {
        "seconds": seconds,
        "uri": lake.table_uri(TABLE),
        "result": {
            k: v for k, v in result.as_dict().items() if k not in {"skipped", "error", "table", "lake"}
        }
        | {"session_seconds": session_seconds},
    }


def _quote(path: str) -> str:
    return "'" + path.replace("'", "''") + "'"


def reference_sql(spec: dict[str, Any], case: str, out: str) -> str:
    """The hand-written last-op-wins merge: DuckDB reads the same raw files."""
    changes = "[" + ", ".join(_quote(p) for p in spec["change_files"]) + "]"
    names = ", ".join(COLUMNS)
    if spec["raw_format"] == "parquet":
        loaded = f"read_parquet([{', '.join(_quote(p) for p in spec['load_files'])}])"
        changed = (
            "SELECT *, filename AS f, file_row_number AS r "
            f"FROM read_parquet({changes}, filename=true, file_row_number=true)"
        )
    else:
        columns = "{" + ", ".join(f"'{c}': '{DUCK_TYPES[c]}'" for c in COLUMNS) + "}"
        op_columns = "{'Op': 'VARCHAR', " + columns[1:]
        loaded = (
            f"read_csv([{', '.join(_quote(p) for p in spec['load_files'])}], header=false, "
            f"columns={columns}, quote='\"', escape='\"')"
        )
        # one scan per file: row_number() numbers each file's rows in file order
        changed = " UNION ALL ".join(
            f"SELECT *, {index} AS f, row_number() OVER () AS r FROM read_csv({_quote(p)}, header=false, "
            f"columns={op_columns}, quote='\"', escape='\"')"
            for index, p in enumerate(spec["change_files"])
        )
    if case == "merge":
        loaded = f"read_parquet({_quote(spec['reference_base'] + '/**/*.parquet')}, hive_partitioning=true)"
    return f"""
COPY (
    WITH changed AS ({changed}),
    last AS (
        SELECT * FROM changed QUALIFY row_number() OVER (PARTITION BY id ORDER BY f DESC, r DESC) = 1
    )
    SELECT {", ".join(f"l.{c}" for c in COLUMNS)} FROM {loaded} AS l ANTI JOIN last USING (id)
    UNION ALL
    SELECT {names} FROM last WHERE Op <> 'D'
) TO {_quote(out)} (FORMAT parquet, PARTITION_BY (region), OVERWRITE)
"""


def _reference(spec: dict[str, Any], case: str) -> dict[str, Any]:
    import duckdb

    out = spec["reference_out"]
    began = time.perf_counter()
    con = duckdb.connect()
    try:
        con.execute(reference_sql(spec, case, out))
    finally:
        con.close()
    return {"seconds": time.perf_counter() - began, "uri": out}


def _reference_base(spec: dict[str, Any]) -> dict[str, Any]:
    """The merge case's previous state for the reference: the full load alone
    as DuckDB's partitioned Parquet (written once, outside the timing)."""
    import duckdb

    names = ", ".join(COLUMNS)
    files = ", ".join(_quote(p) for p in spec["load_files"])
    if spec["raw_format"] == "parquet":
        loaded = f"read_parquet([{files}])"
    else:
        columns = "{" + ", ".join(f"'{c}': '{DUCK_TYPES[c]}'" for c in COLUMNS) + "}"
        loaded = f"read_csv([{files}], header=false, columns={columns}, quote='\"', escape='\"')"
    out = _quote(spec["reference_base"])
    con = duckdb.connect()
    try:
        con.execute(f"COPY (SELECT {names} FROM {loaded}) TO {out} (FORMAT parquet, PARTITION_BY (region))")
    finally:
        con.close()
    rows, checksum = parquet_fingerprint(spec["reference_base"])
    return {"rows": rows, "checksum": checksum}


def _checksum_sql(relation: str) -> str:
    cast = ", ".join(f"{c}::{DUCK_TYPES[c]}" for c in COLUMNS)
    return f"SELECT count(*), coalesce(sum(hash({cast})::HUGEINT), 0)::VARCHAR FROM {relation}"


def delta_fingerprint(uri: str) -> tuple[int, str]:
    import duckdb
    from deltalake import DeltaTable

    con = duckdb.connect()
    try:
        con.register("curated", DeltaTable(uri).to_pyarrow_dataset())
        row = con.execute(_checksum_sql("curated")).fetchone()
    finally:
        con.close()
    assert row is not None
    return int(row[0]), str(row[1])


def parquet_fingerprint(folder: str) -> tuple[int, str]:
    import duckdb

    con = duckdb.connect()
    try:
        relation = f"read_parquet({_quote(folder + '/**/*.parquet')}, hive_partitioning=true)"
        row = con.execute(_checksum_sql(relation)).fetchone()
    finally:
        con.close()
    assert row is not None
    return int(row[0]), str(row[1])


# --- the parent ------------------------------------------------------------------------------


def run_child(
    side: str, case: str, spec_file: Path, workdir: Path, timeout_s: float, of: str | None = None
) -> tuple[dict[str, Any], float, float, float]:
    """One child; (its result, process seconds, peak RSS MB, CPU seconds)."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "child",
        side,
        "--case",
        case,
        "--spec",
        str(spec_file),
    ]
    if of is not None:
        command += ["--of", of]
    out = common_run_child(command, workdir, f"{side}-{case}", f"{side} {case}", timeout_s)
    return out.result, out.process_seconds, out.peak_rss_mb, out.cpu_seconds


def fingerprint(setup: Setup, of: str) -> tuple[int, str]:
    """(rows, checksum) of a curated Delta table (``delta:URI``) or a Parquet
    folder (``parquet:FOLDER``), read in a child."""
    body, *_ = run_child("fingerprint", CASES[0], setup.spec_file, setup.workdir, setup.timeout_s, of=of)
    return int(body["rows"]), str(body["checksum"])


def expect_same(what: str, got: tuple[int, str], want: tuple[int, str]) -> None:
    if got != want:
        raise BenchFailure(
            f"{what}: {got[0]:,} rows, checksum {got[1]}; the reference has {want[0]:,} rows, "
            f"checksum {want[1]}"
        )


@dataclass
class Setup:
    rows: int
    changes: int
    rounds: int
    raw_format: str
    timeout_s: float
    workdir: Path
    spec_file: Path = Path()
    spec: dict[str, Any] = field(default_factory=dict)
    raw_seconds: float | None = None
    reference_base: tuple[int, str] | None = None
    oracle: tuple[int, str] | None = None
    """The first result; every later run must match it."""

    def write_spec(self) -> None:
        self.spec_file.write_text(json.dumps(self.spec))


def prepare(setup: Setup, cases: list[str]) -> None:
    """The raw area (and the merge reference's previous state), in children."""
    setup.spec_file = setup.workdir / "spec.json"
    setup.spec = {
        "lake": str(setup.workdir / "lake"),
        "rows": setup.rows,
        "changes": setup.changes,
        "raw_format": setup.raw_format,
        "reference_base": str(setup.workdir / "reference-base"),
        "reference_out": str(setup.workdir / "reference-out"),
    }
    setup.write_spec()
    body, *_ = run_child("generate", CASES[0], setup.spec_file, setup.workdir, setup.timeout_s)
    setup.raw_seconds = float(body.pop("seconds"))
    setup.spec.update(body)
    setup.write_spec()
    log(
        f"raw area written in {setup.raw_seconds:.1f} s: {len(body['load_files'])} LOAD file(s), "
        f"{len(body['change_files'])} change files; {body['expected_rows']:,} rows expected"
    )
    if "merge" in cases:
        body, *_ = run_child("reference-base", "merge", setup.spec_file, setup.workdir, setup.timeout_s)
        setup.reference_base = (int(body["rows"]), str(body["checksum"]))
        if setup.reference_base[0] != setup.rows:
            raise BenchFailure(
                f"reference base: {setup.reference_base[0]:,} rows, the load has {setup.rows:,}"
            )


def check_result(setup: Setup, what: str, got: tuple[int, str]) -> None:
    expected = int(setup.spec["expected_rows"])
    if got[0] != expected:
        raise BenchFailure(f"{what}: {got[0]:,} rows, the generated operations leave {expected:,}")
    if setup.oracle is None:
        setup.oracle = got
    expect_same(what, got, setup.oracle)


def run_case(setup: Setup, case: str) -> CaseResult:
    result = CaseResult(case, setup.rows, setup.changes, setup.raw_format)
    curated = Path(setup.spec["lake"]) / CURATED
    out = Path(setup.spec["reference_out"])

    def reference(round_no: int) -> None:
        shutil.rmtree(out, ignore_errors=True)
        body, process_s, rss, cpu = run_child(
            "reference", case, setup.spec_file, setup.workdir, setup.timeout_s
        )
        rows, checksum = fingerprint(setup, f"parquet:{out}")
        run = Run(float(body["seconds"]), process_s, rss, rows, checksum, cpu_seconds=cpu)
        check_result(setup, f"reference {case} round {round_no}", (rows, checksum))
        result.reference_runs.append(run)
        log(
            f"  {case} round {round_no}: reference {run.seconds:6.2f} s "
            f"(process {process_s:.2f} s, peak RSS {rss:.0f} MB, {rows:,} rows)"
        )

    def conveyor(round_no: int, side: str = "conveyor") -> None:
        shutil.rmtree(curated, ignore_errors=True)
        if case == "merge":  # the curated table of the full load alone, outside the timing
            body, *_ = run_child("prepare", case, setup.spec_file, setup.workdir, setup.timeout_s)
            assert setup.reference_base is not None
            expect_same("merge preparation", fingerprint(setup, f"delta:{body['uri']}"), setup.reference_base)
        body, process_s, rss, cpu = run_child(side, case, setup.spec_file, setup.workdir, setup.timeout_s)
        rows, checksum = fingerprint(setup, f"delta:{body['uri']}")
        run = Run(float(body["seconds"]), process_s, rss, rows, checksum, body["result"], cpu)
        check_result(setup, f"{side} {case} round {round_no}", (rows, checksum))
        (result.spark_runs if side == "spark" else result.conveyor_runs).append(run)
        detail = body["result"]
        started = detail.get("session_seconds")
        log(
            f"  {case} round {round_no}: {side:9} {run.seconds:6.2f} s "
            + ("" if started is None else f"(+{started:.1f} s session start) ")
            + f"(process {process_s:.2f} s, peak RSS {rss:.0f} MB, {rows:,} rows; "
            f"+{detail['inserted']:,} ~{detail['updated']:,} -{detail['deleted']:,}, "
            f"{detail['files_rewritten']} files rewritten)"
        )

    def spark(round_no: int) -> None:
        conveyor(round_no, "spark")

    for round_no in range(1, setup.rounds + 1):
        sides = [reference, conveyor, *([spark] if setup.spec.get("master") else [])]
        for side in sides if round_no % 2 else reversed(sides):
            side(round_no)
    return result


# --- output ----------------------------------------------------------------------------------


def table(results: Sequence[CaseResult]) -> str:
    header = (
        "case",
        "format",
        "rows",
        "changes",
        "ref median s",
        "conveyor median s",
        "process s",
        "ratio",
        "target",
        "ref peak RSS MB",
        "conveyor peak RSS MB",
        "verdict",
        "spark median s",
        "spark/embedded",
    )
    lines = [header]
    for r in results:
        lines.append(
            (
                r.case,
                r.raw_format,
                f"{r.rows:,}",
                f"{r.changes:,}",
                num(r.reference_median, ".2f"),
                num(r.conveyor_median, ".2f"),
                num(r.process_median, ".2f"),
                "-" if r.ratio is None else f"{r.ratio:.3f}x",
                f"<= {RATIO_TARGET:.2f}x",
                num(r.reference_rss_mb, ".0f"),
                num(r.conveyor_rss_mb, ".0f"),
                r.verdict(),
                num(r.spark_median, ".2f"),
                "-" if r.spark_ratio is None else f"{r.spark_ratio:.2f}x",
            )
        )
    return render_table(lines[0], lines[1:], {2, 3, 4, 5, 6, 7, 9, 10, 12, 13})


def environment() -> dict[str, Any]:
    """Versions from the installed metadata (importing them would raise the
    parent's RSS, the floor of every child's ru_maxrss)."""
    from importlib.metadata import version

    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        **{name: version(name) for name in ("duckdb", "deltalake", "pyarrow")},
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/curate.py",
        description="Lake curation benchmark of Conveyor against a DuckDB SQL merge (see bench/README.md).",
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the full load (default 1000000)")
    parser.add_argument(
        "--changes", type=int, default=200_000, help="change rows in 10 change files (default 200000)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternated rounds per case (default 3)")
    parser.add_argument(
        "--format", choices=("parquet", "csv"), default="parquet", help="raw file format (default parquet)"
    )
    parser.add_argument(
        "--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)} (default both)"
    )
    parser.add_argument(
        "--timeout", type=float, help="seconds any one step may take (default: scaled with --rows)"
    )
    parser.add_argument(
        "--engine",
        choices=("embedded", "spark"),
        default="embedded",
        help="spark: also curate on a local Spark standalone cluster, beside the embedded engine",
    )
    parser.add_argument(
        "--no-json", action="store_true", help="do not write bench/results/curate-<timestamp>.json"
    )
    args = parser.parse_args(argv)
    args.case_list = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in args.case_list if c not in CASES]
    if unknown or not args.case_list:
        parser.error(f"unknown case(s) {unknown}; choose from {', '.join(CASES)}")
    if args.rows < 1 or args.rounds < 1 or args.changes < CHANGE_FILES:
        parser.error(f"--rows and --rounds must be at least 1, --changes at least {CHANGE_FILES}")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["child"]:
        return _child(argv[1:])
    args = parse_args(argv)
    timeout_s = args.timeout or max(300.0, (args.rows + args.changes) / 2000)
    started = datetime.now(UTC)
    workdir = Path(tempfile.mkdtemp(prefix="conveyor-bench-curate-", dir="/tmp"))
    setup = Setup(args.rows, args.changes, args.rounds, args.format, timeout_s, workdir)
    results: list[CaseResult] = []
    failure: str | None = None
    log(
        f"conveyor curation bench: {args.rows:,}-row full load + {args.changes:,} changes "
        f"({args.format}), {args.rounds} rounds, cases {args.case_list}"
    )
    cluster = None
    try:
        if args.engine == "spark":
            from support.spark import start_cluster

            cluster = start_cluster(memory="4g", cores=os.cpu_count() or 2)
            log(f"spark: standalone cluster at {cluster.master_url}")
        prepare(setup, args.case_list)
        if cluster is not None:
            setup.spec["master"] = cluster.master_url
            setup.write_spec()
        for case in args.case_list:
            log(f"{case}:")
            results.append(run_case(setup, case))
    except BenchFailure as exc:
        failure = str(exc)
    finally:
        if cluster is not None:
            cluster.close()
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(table(results))
    if not args.no_json:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        path = RESULTS_DIR / f"curate-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
        document = {
            "bench": "curate",
            "started": started.isoformat(),
            "rows": args.rows,
            "changes": args.changes,
            "change_files": CHANGE_FILES,
            "raw_format": args.format,
            "rounds": args.rounds,
            "cases": args.case_list,
            "engine": args.engine,
            "environment": environment(),
            "raw_write_seconds": setup.raw_seconds,
            "expected_rows": setup.spec.get("expected_rows"),
            "checksum": None if setup.oracle is None else setup.oracle[1],
            "results": [r.as_dict() for r in results],
            "failure": failure,
        }
        path.write_text(json.dumps(document, indent=2) + "\n")
        print(f"\nresults: {path.relative_to(REPO)}")
    if failure is not None:
        print(f"\nBENCH FAILED: {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
