"""A private Spark standalone cluster on loopback: one master and one worker
(1 core, limited memory), started with pyspark's own ``bin/spark-class`` on
free ports, logs and work dirs in a temp dir, stopped by pid."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.servers import free_port

STARTUP_TIMEOUT = 90.0


@dataclass
class SparkCluster:
    master_url: str
    web_url: str
    tempdir: Path
    processes: list[subprocess.Popen[bytes]]

    def state(self) -> dict[str, Any]:
        """The master's ``/json/`` page (workers, active and completed apps)."""
        with urllib.request.urlopen(f"{self.web_url}/json/", timeout=10) as answer:
            data: dict[str, Any] = json.loads(answer.read())
        return data

    def completed_apps(self) -> list[dict[str, Any]]:
        return list(self.state().get("completedapps", []))

    def wait_completed(self, count: int, timeout: float = 60.0) -> list[dict[str, Any]]:
        """The completed applications once there are at least ``count``."""
        deadline = time.monotonic() + timeout
        apps = self.completed_apps()
        while len(apps) < count and time.monotonic() < deadline:
            time.sleep(0.5)
            apps = self.completed_apps()
        return apps

    def close(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        shutil.rmtree(self.tempdir, ignore_errors=True)


def start_cluster(memory: str = "1536m", cores: int = 1) -> SparkCluster:
    import pyspark

    home = Path(pyspark.__file__).parent
    spark_class = str(home / "bin" / "spark-class")
    tempdir = Path(tempfile.mkdtemp(prefix="conveyor-spark-cluster-"))
    port, web, worker_web = free_port(), free_port(), free_port()
    env = dict(os.environ)
    env.update(
        SPARK_HOME=str(home),
        SPARK_LOG_DIR=str(tempdir / "logs"),
        SPARK_WORKER_DIR=str(tempdir / "work"),
        SPARK_LOCAL_DIRS=str(tempdir / "local"),
        SPARK_LOCAL_IP="127.0.0.1",
    )
    master_url = f"spark://127.0.0.1:{port}"
    master = ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port)]
    master += ["--webui-port", str(web)]
    worker = ["org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--cores", str(cores)]
    worker += ["--memory", memory, "--webui-port", str(worker_web), "--work-dir", str(tempdir / "work")]
    processes: list[subprocess.Popen[bytes]] = []
    for name, args in (("master", master), ("worker", [*worker, master_url])):
        with open(tempdir / f"{name}.log", "wb") as log:  # the child keeps its own descriptor
            processes.append(
                subprocess.Popen([spark_class, *args], env=env, stdout=log, stderr=subprocess.STDOUT)
            )
    cluster = SparkCluster(master_url, f"http://127.0.0.1:{web}", tempdir, processes)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in processes):
            break
        try:
            if any(w.get("state") == "ALIVE" for w in cluster.state().get("workers", [])):
                return cluster
        except OSError:
            pass
        time.sleep(0.5)
    logs = (tempdir / "master.log").read_text(errors="replace")[-2000:]
    logs += (tempdir / "worker.log").read_text(errors="replace")[-2000:]
    cluster.close()
    raise RuntimeError(f"the Spark cluster did not come up:\n{logs}")
