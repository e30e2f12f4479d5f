"""A private PostgreSQL cluster for benchmarks that restart the server (never the shared one).

    cluster = PgCluster(Path("/tmp/pgsoak"), port=5433)
    cluster.start()          # initdb on first use, then pg_ctl start
    cluster.restart()        # pg_ctl restart -m fast: what a real restart looks like to clients
    cluster.stop()

As root, the PostgreSQL tools run as the `postgres` user (initdb refuses root). The cluster
listens on 127.0.0.1 only, trusts local connections, and keeps its socket in the data dir's
parent, so it never meets the shared server on 5432.
"""

from __future__ import annotations

import glob
import os
import subprocess
import time
from pathlib import Path
from subprocess import DEVNULL


def pg_bin(tool: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{tool}"))
    return found[-1] if found else tool


class PgCluster:
    def __init__(self, datadir: Path, port: int = 5433) -> None:
        self.datadir, self.port = datadir.resolve(), port
        self.restarts: list[float] = []  # seconds each restart took

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 120, check: bool = True) -> int:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        # Output to /dev/null, never a pipe: the server started by pg_ctl would hold a pipe open.
        done = subprocess.run([*prefix, *args], check=check, timeout=timeout, stdout=DEVNULL, stderr=DEVNULL)
        return done.returncode

    @property
    def log(self) -> Path:
        return self.datadir.parent / f"{self.datadir.name}.log"

    def _options(self) -> str:
        return f"-p {self.port} -k {self.datadir.parent} -c listen_addresses=127.0.0.1 -c max_connections=200"

    def start(self) -> None:
        if not (self.datadir / "PG_VERSION").exists():
            self.datadir.mkdir(parents=True, exist_ok=True)
            if os.geteuid() == 0:
                subprocess.run(["chown", "postgres:postgres", str(self.datadir)], check=True)
            self._run(pg_bin("initdb"), "-D", str(self.datadir), "-A", "trust", "-U", "postgres")
        if self._run(pg_bin("pg_ctl"), "-D", str(self.datadir), "status", check=False):
            if os.geteuid() == 0 and not self.log.exists():
                self.log.touch()
                subprocess.run(["chown", "postgres:postgres", str(self.log)], check=True)
            self._run(
                pg_bin("pg_ctl"), "-D", str(self.datadir), "-l", str(self.log), "-o", self._options(), "-w", "start"
            )

    def restart(self) -> float:
        started = time.monotonic()
        self._run(
            pg_bin("pg_ctl"),
            "-D",
            str(self.datadir),
            "-l",
            str(self.log),
            "-o",
            self._options(),
            "-m",
            "fast",
            "-w",
            "restart",
        )
        took = time.monotonic() - started
        self.restarts.append(took)
        return took

    def stop(self) -> None:
        self._run(pg_bin("pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "stop")
