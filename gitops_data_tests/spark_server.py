"""A local Spark Connect server for the tests: local[2], its warehouse and Derby metastore in a
temp dir, ready when it answers a real query (the port opens seconds before), stopped by SIGTERM."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
START_TIMEOUT = 240.0  # 11-28 s measured on 2 cores under load; a loaded CI machine is slower


class SparkServerError(RuntimeError):
    """The test server did not start (its log's tail says why)."""


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    """Whether the server at `url` runs a query (a session of its own, released after)."""
    warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas", FutureWarning)
    from pyspark.sql import SparkSession

    try:
        session = SparkSession.builder.remote(url).create()
        try:
            return session.sql("select 1").collect()[0][0] == 1
        finally:
            session.stop()
    except Exception:
        return False


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def local_spark_server(root: Path) -> Iterator[str]:
    """Start a server under `root`, yield its `sc://` URL once it answers, stop it after."""
    home, port = spark_home(), _free_port()
    log = (root / "server.log").open("wb")
    command = [
        str(home / "bin" / "spark-submit"),
        *("--class", SERVER_CLASS, "--master", "local[2]", "--driver-memory", "1g"),
        *("--conf", f"spark.connect.grpc.binding.port={port}"),
        *("--conf", "spark.connect.grpc.binding.address=127.0.0.1"),
        *("--conf", "spark.ui.enabled=false"),
        *("--conf", "spark.sql.shuffle.partitions=2"),
        *("--conf", f"spark.sql.warehouse.dir={root / 'warehouse'}"),
        *("--conf", "spark.sql.catalogImplementation=hive"),
        *(
            "--conf",
            "spark.hadoop.javax.jdo.option.ConnectionURL="
            f"jdbc:derby:;databaseName={root / 'metastore_db'};create=true",
        ),
        *("--conf", f"spark.driver.extraJavaOptions=-Dderby.system.home={root}"),
        "spark-internal",
    ]
    env = {**os.environ, "SPARK_HOME": str(home), "SPARK_LOCAL_IP": "127.0.0.1"}
    proc = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root, start_new_session=True
    )
    url = f"sc://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not (_port_open(port) and _answers(url)):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = (root / "server.log").read_text(errors="replace")[-2000:]
                raise SparkServerError(
                    f"the Spark Connect server did not start (exit {proc.poll()}):\n{tail}"
                )
            time.sleep(0.5)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
