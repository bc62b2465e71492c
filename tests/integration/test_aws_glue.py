"""Glue's StartJobRun / GetJobRun / GetJobRuns through boto3 run and report the lake
curation job."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from support.aws import KEYS, TOKEN, aws_client
from support.cli import conveyor
from support.serve import Serve, wait_for
from support.servers import free_port

pytestmark = pytest.mark.e2e


def lake_stack(folder: Path) -> Path:
    with sqlite3.connect(folder / "src.sqlite") as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, region TEXT NOT NULL, qty INTEGER)")
        conn.executemany(
            "INSERT INTO orders VALUES (?, ?, ?)", [(i, ("eu", "us")[i % 2], i) for i in range(1, 21)]
        )
    conn.close()
    stack = folder / "conveyor.yaml"
    stack.write_text(
        json.dumps(
            {
                "endpoints": {
                    "src": {"engine": "sqlite", "path": "./src.sqlite"},
                    "lake": {"engine": "lake", "path": "./lake", "settings": {"AddColumnName": True}},
                },
                "tasks": {"load": {"source": "src", "target": "lake"}},
                "lake_tables": {"main.orders": {"primary_key": "id", "partition_key": "region"}},
            }
        )
    )
    return stack


def test_job_runs_of_the_curation_job(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert conveyor(home, "apply", str(lake_stack(tmp_path))).returncode == 0
    loaded = conveyor(home, "tasks", "start", "load", "--wait")
    assert loaded.returncode == 0, loaded.stderr
    server = Serve(home, free_port(), KEYS | TOKEN)
    try:
        server.ready()
        glue = aws_client(server.url, "glue")
        run_id = glue.start_job_run(JobName="dmscdc-lake", Arguments={"--table": "main.orders"})["JobRunId"]

        def finished() -> dict[str, Any] | None:
            run: dict[str, Any] = glue.get_job_run(JobName="dmscdc-lake", RunId=run_id)["JobRun"]
            return run if run["JobRunState"] != "RUNNING" else None

        run = wait_for(finished, 120, "the job run")
        assert run["JobRunState"] == "SUCCEEDED", run
        assert run["Arguments"] == {"--table": "main.orders"} and run["CompletedOn"] >= run["StartedOn"]
        assert (tmp_path / "lake" / "curated").exists()

        failing = glue.start_job_run(JobName="dmscdc-lake", Arguments={"--table": "main.nope"})["JobRunId"]
        failed = wait_for(
            lambda: (
                (r := glue.get_job_run(JobName="dmscdc-lake", RunId=failing)["JobRun"])["JobRunState"]
                != "RUNNING"
                and r
            ),
            120,
            "the failing run",
        )
        assert failed["JobRunState"] == "FAILED" and "main.nope" in failed["ErrorMessage"]

        runs = glue.get_job_runs(JobName="dmscdc-lake")["JobRuns"]
        assert [r["Id"] for r in runs] == [failing, run_id]  # newest first
        assert glue.get_job_runs(JobName="another-job")["JobRuns"] == []
        with pytest.raises(glue.exceptions.EntityNotFoundException):
            glue.get_job_run(JobName="dmscdc-lake", RunId="jr_missing")
        with pytest.raises(glue.exceptions.InvalidInputException):
            glue.start_job_run(JobName="dmscdc-lake", Arguments={"--tabel": "main.orders"})
    finally:
        server.kill()
