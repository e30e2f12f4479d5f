"""The `paywire` command, run as a user runs it: a real subprocess."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import free_port

PAYWIRE = [sys.executable, "-m", "paywire.cli.main"]


def _run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PAYWIRE, *args], cwd=cwd, capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})}
    )


def test_keys_create_prints_one_key_alone_on_stdout(tmp_path: Path, database_url: str) -> None:
    test_key = _run("keys", "create", "--database-url", database_url, cwd=tmp_path)
    live_key = _run("keys", "create", "--live", "--database-url", database_url, cwd=tmp_path)
    assert test_key.returncode == 0, test_key.stderr
    assert re.fullmatch(r"sk_test_[A-Za-z0-9_-]{40,}\n", test_key.stdout)
    assert re.fullmatch(r"sk_live_[A-Za-z0-9_-]{40,}\n", live_key.stdout)


def test_migrate_uses_the_env_var_and_is_repeatable(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'env.db'}"
    for _ in range(2):
        result = _run("migrate", cwd=tmp_path, env={"PAYWIRE_DATABASE_URL": url})
        assert result.returncode == 0, result.stderr
    assert (tmp_path / "env.db").exists()


def test_bad_database_url_is_a_clear_error(tmp_path: Path) -> None:
    result = _run("migrate", "--database-url", "mysql://nope", cwd=tmp_path)
    # The settings refuse it at start-up, in one line naming the setting and what it accepts.
    assert result.returncode != 0 and "database_url" in result.stderr and "must be sqlite" in result.stderr


def test_serve_defaults_to_sqlite_in_dot_paywire_and_prints_a_key_once(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PAYWIRE_DATABASE_URL"}
    port = free_port()
    outputs, statuses = [], []
    key = ""
    for _ in range(2):  # the second start finds the key and prints none
        proc = subprocess.Popen(
            [*PAYWIRE, "serve", "--port", str(port)], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True
        )
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    auth = {"Authorization": f"Bearer {key or 'sk_test_none'}"}
                    statuses.append(httpx.get(f"http://127.0.0.1:{port}/api/customers", headers=auth).status_code)
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            else:
                raise AssertionError("paywire serve did not start")
        finally:
            proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=30)
        outputs.append(stderr)
        found = re.findall(r"sk_test_[A-Za-z0-9_-]+", stderr)
        key = key or (found[0] if found else "")
    assert (tmp_path / ".paywire" / "paywire.db").exists()
    assert len(re.findall(r"sk_test_", outputs[0])) == 1 and "sk_test_" not in outputs[1]
    assert statuses == [401, 200]  # no key yet on the first request; the printed key works
