"""A Spark session for the curation job, on a standalone cluster or ``local[N]``.

pyspark is an optional extra (``pip install 'conveyor[spark]'``) and needs a
Java runtime; both are checked here, so a missing one is a message a person can
act on, not an import error from deep inside a run.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from conveyor.core.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

APP_NAME = "conveyor-curation"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
DEFAULTS = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.parquet.compression.codec": "snappy",
    "spark.sql.shuffle.partitions": "4",
    "spark.sql.execution.arrow.maxRecordsPerBatch": "65536",
    "spark.ui.enabled": "false",
    # no _SUCCESS marker beside the files Spark writes into a table's folder
    "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",
    "spark.ui.showConsoleProgress": "false",
}


def _pyspark() -> Any:
    try:
        import pyspark
    except ImportError as exc:
        raise ConfigError(
            "the Spark engine needs pyspark: pip install 'conveyor[spark]' (and a Java runtime, 17 or newer)"
        ) from exc
    return pyspark


def _check_java() -> None:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return
    if shutil.which("java") is None:
        raise ConfigError(
            "the Spark engine needs a Java runtime (17 or newer) on PATH or in JAVA_HOME; "
            "on Debian: apt-get install default-jre-headless"
        )


def spark_home() -> str:
    """pyspark's own folder: it holds ``bin/spark-class`` and the jars."""
    return str(Path(_pyspark().__file__).parent)


def start(master: str, conf: dict[str, str] | None = None) -> SparkSession:
    """A session on ``master`` (``spark://HOST:PORT`` or ``local[N]``)."""
    _pyspark()
    _check_java()
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master(master).appName(APP_NAME)
    settings = dict(DEFAULTS)
    host = urlparse(master).hostname if master.startswith("spark://") else None
    if master.startswith("local") or host in LOOPBACK:
        settings["spark.driver.host"] = "127.0.0.1"
        settings["spark.driver.bindAddress"] = "127.0.0.1"
    # executors on this host import this Conveyor (other hosts need it installed)
    source = str(Path(__file__).resolve().parents[2])
    python_path = os.pathsep.join(p for p in (source, os.environ.get("PYTHONPATH", "")) if p)
    settings["spark.executorEnv.PYTHONPATH"] = python_path
    # the executors' Python: this one (with Conveyor and its dependencies) unless set
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    settings["spark.pyspark.python"] = os.environ["PYSPARK_PYTHON"]
    settings.update(conf or {})
    for key, value in settings.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def message(exc: BaseException) -> str:
    """A Spark failure in one line: the Python worker's or the JVM's last
    error line, not the banner above it."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("at ", "File ", "^", "~"))]
    return (useful[-1] if useful else type(exc).__name__)[:600]
