"""Every shell command in the docs' ```bash blocks runs, in order, against a real server.

One test per page (README.md, docs/*.md, examples/README.md), so a page reads as a walkthrough:
`export`s carry over to the commands after them. Before running, a command is made to fit the
test: `localhost:8800` becomes the test server, `localhost:8000` a free port, `sk_test_…` the
test key, `evt_…` a real event, `we_…` a fresh endpoint, a `postgresql://…` URL the test
database. Long-running commands (`paywire serve|worker|listen`, `uvicorn`, the EventBus worker)
are started, checked to come up, and stopped. A few commands cannot run inside the test suite;
STAND_INS lists each with the command run instead, and why.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import Server, _truncate_pg, free_port, run_sync

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "examples" / "README.md"]
VENV_BIN = str(Path(sys.executable).parent)
START_TIMEOUT = 30.0
RUN_TIMEOUT = 60.0

# command in the docs -> (what runs instead, why)
STAND_INS: dict[str, tuple[str, str]] = {
    "python3 -m venv .venv": ('python3 -m venv --without-pip "$DOCS_TMP/venv"', "never touch the project's .venv"),
    ".venv/bin/pip install -e .": (".venv/bin/pip show --quiet paywire", "tests install nothing; it is installed"),
    "./scripts/test.sh": ("bash -n scripts/test.sh", "it runs this very test suite"),
    "pip install ./clients/paywire-client": (
        '.venv/bin/pip wheel -q --no-build-isolation --no-deps ./clients/paywire-client -w "$DOCS_TMP/wheels"',
        "the wheel is built; installing it here would shadow the project's own package "
        "(tests/integration/test_client_distribution.py installs it into a fresh virtualenv)",
    ),
    "paywire backup backups/paywire-$(date +%F).db --database-url sqlite:///.paywire/paywire.db": (
        'paywire migrate --database-url "sqlite:///$DOCS_TMP/live.db" && '
        'paywire backup "$DOCS_TMP/backup-$(date +%F).db" --database-url "sqlite:///$DOCS_TMP/live.db"',
        "the same copy, of a database of the test's own, into the test's folder",
    ),
    'pg_dump --format=custom --file=paywire.dump "$PAYWIRE_DATABASE_URL"': (
        'pg_dump --format=custom --file="$DOCS_TMP/paywire.dump" "$PAYWIRE_DATABASE_URL"',
        "the dump goes to the test's folder",
    ),
    "createdb paywire_restored": (
        "dropdb --if-exists -h 127.0.0.1 -U postgres paywire_docs_restore && "
        "createdb -h 127.0.0.1 -U postgres paywire_docs_restore",
        "a database of the test's own on the test server",
    ),
    "pg_restore --no-owner --dbname=paywire_restored paywire.dump": (
        'pg_restore --no-owner -h 127.0.0.1 -U postgres --dbname=paywire_docs_restore "$DOCS_TMP/paywire.dump"; '
        "status=$?; dropdb -h 127.0.0.1 -U postgres paywire_docs_restore; exit $status",
        "restored into the test's database, dropped afterwards",
    ),
}
# Every benchmark (`.venv/bin/python bench/NAME.py …`) runs minutes of load: its `--help` runs instead.
BENCHMARK = re.compile(r"^(\.venv/bin/python bench/\w+\.py)\b.*")


# A pytest command shown in the docs runs tests this suite already runs: only collect them.
PYTEST = re.compile(r"^\.venv/bin/pytest (\S+).*")


def stand_in(text: str) -> str:
    if text in STAND_INS:
        return STAND_INS[text][0]
    return PYTEST.sub(r".venv/bin/pytest --collect-only -q \1", BENCHMARK.sub(r"\1 --help", text))


@dataclass
class Command:
    line: int
    text: str


def extract(page: Path) -> list[Command]:
    """The commands of the page's ```bash blocks: continuations joined, comment lines dropped."""
    commands: list[Command] = []
    in_bash, pending, start = False, "", 0
    for number, line in enumerate(page.read_text().splitlines(), 1):
        if line.strip().startswith("```"):
            in_bash = not in_bash and line.strip() == "```bash"
            continue
        if not in_bash or (not pending and (not line.strip() or line.strip().startswith("#"))):
            continue
        start = start or number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1].strip() + " "
            continue
        commands.append(Command(start, re.sub(r"\s+# .*$", "", pending + line.strip())))
        pending, start = "", 0
    return commands


def test_the_docs_show_commands() -> None:
    counted = {page.name: len(extract(page)) for page in PAGES}
    assert all(counted[name] >= 3 for name in ("quickstart.md", "deployment.md", "cli.md")), counted


# --- making a command fit the test ----------------------------------------------------------


@dataclass
class Context:
    server: Server
    api: httpx.AsyncClient
    pg_url: Callable[[], str]
    env: dict[str, str]
    event_id: str = ""
    app_port: int = field(default_factory=free_port)

    async def fit(self, text: str) -> str:
        text = stand_in(text)
        host = self.server.url.removeprefix("http://")
        text = re.sub(r"(localhost|127\.0\.0\.1):8800", host, text)
        text = re.sub(r"(localhost|127\.0\.0\.1):8000", f"127.0.0.1:{self.app_port}", text)
        text = text.replace("--port 8000", f"--port {self.app_port}").replace("0.0.0.0", "127.0.0.1")
        text = text.replace("sk_test_…", self.server.test_key).replace("evt_…", self.event_id)
        if "postgresql://" in text:
            text = re.sub(r"postgresql://\S+", self.pg_url(), text)
        if "we_…" in text:
            endpoint = await self.api.post(
                "/api/webhook-endpoints",
                json={"url": "http://127.0.0.1:9/docs", "enabled_events": ["customer.created"]},
            )
            text = text.replace("we_…", endpoint.json()["id"])
        if re.search(r"\bpaywire serve\b", text):  # its own free port, never 8800
            port = str(free_port())
            text = re.sub(r"--port \d+", f"--port {port}", text) if "--port" in text else f"{text} --port {port}"
        return text


# --- running --------------------------------------------------------------------------------


async def run_once(text: str, env: dict[str, str]) -> tuple[bool, str]:
    proc = await asyncio.create_subprocess_exec(
        "bash", "-c", text, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), RUN_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return False, f"timed out after {RUN_TIMEOUT} s"
    out = stdout.decode(errors="replace")
    try:
        api_error = isinstance(body := json.loads(out), dict) and "error" in body
    except ValueError:
        api_error = False
    return proc.returncode == 0 and not api_error, f"exit {proc.returncode}\n{out}\n{stderr.decode(errors='replace')}"


def readiness(text: str, ctx: Context) -> Callable[[str], bool] | None:
    """For a long-running command, a check that it is up: of its output, or of its effect."""
    if match := re.search(r"\bpaywire serve\b.*--port (\d+)", text):
        url = f"http://127.0.0.1:{match.group(1)}/openapi.json"
        return lambda _out: _answers(url)
    if re.search(r"\bpaywire worker\b", text):
        return lambda out: "delivering webhooks" in out
    if re.search(r"\bpaywire listen\b", text):
        return lambda out: "Ready!" in out
    if re.search(r"\buvicorn\b", text):
        return lambda out: "Application startup complete" in out
    if "eventbus_worker.py" in text:
        return lambda _out: _answers(f"{ctx.server.url}/api/event-consumers/example-worker", ctx.server.test_key)
    return None


def _answers(url: str, key: str | None = None) -> bool:
    try:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.get(url, headers=headers, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


async def start_and_stop(text: str, env: dict[str, str], ready: Callable[[str], bool]) -> tuple[bool, str]:
    """Start a long-running command, wait until `ready(output)`, then stop it with SIGINT."""
    proc = await asyncio.create_subprocess_exec(
        "bash", "-c", text, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    output: list[str] = []

    async def read() -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            output.append(line.decode(errors="replace"))

    reader = asyncio.create_task(read())
    deadline, up = time.monotonic() + START_TIMEOUT, False
    while not up and proc.returncode is None and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        up = await asyncio.to_thread(ready, "".join(output))
    alive = proc.returncode is None
    if alive:
        os.killpg(proc.pid, signal.SIGINT)
    try:
        await asyncio.wait_for(proc.wait(), 15)
    except TimeoutError:
        os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
    await asyncio.wait_for(reader, 5)
    return up and alive, "did not come up:\n" + "".join(output)[-3000:] if not up else ""


async def run_page(page: Path, ctx: Context) -> list[str]:
    """Run the page's commands in order; the failures, each with its output.

    Long-running commands are started in the background (later commands do not depend on them:
    they talk to the test server), so that their start-ups overlap."""
    failures: list[str] = []
    background: list[tuple[str, asyncio.Task[tuple[bool, str]]]] = []
    for command in extract(page):
        for part in command.text.split(" && "):
            text = await ctx.fit(part.strip())
            label = f"{page.relative_to(ROOT)}:{command.line}: {part}\n  ran: {text}\n"
            if text.startswith("export "):
                name, _, value = text.removeprefix("export ").partition("=")
                ctx.env[name] = shlex.split(value)[0] if value else ""
                continue
            if ready := readiness(text, ctx):
                background.append((label, asyncio.create_task(start_and_stop(text, dict(ctx.env), ready))))
                continue
            ok, out = await run_once(text, ctx.env)
            if not ok:
                failures.append(label + out)
                break
    for label, task in background:
        ok, out = await task
        if not ok:
            failures.append(label + out)
    return failures


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only here: the pages' PostgreSQL commands get a database of their own (pg_url)."""
    return f"sqlite:///{tmp_path / 'paywire.db'}"


PAGES_WITH_COMMANDS = [page for page in PAGES if extract(page)]


@pytest.mark.parametrize("page", PAGES_WITH_COMMANDS, ids=[str(p.relative_to(ROOT)) for p in PAGES_WITH_COMMANDS])
async def test_every_command_of_the_page_runs(
    page: Path, server: Server, api: httpx.AsyncClient, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    customer = (await api.post("/api/customers", json={"email": "docs@example.com"})).json()
    event = (await api.get("/api/events", params={"object_id": customer["id"]})).json()["list"][0]
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PAYWIRE_URL": server.url,
        "PAYWIRE_API_KEY": server.test_key,
        "PAYWIRE_DATABASE_URL": f"sqlite:///{tmp_path / 'docs.db'}",  # for serve, worker, migrate, keys
        "XDG_CONFIG_HOME": str(tmp_path / "config"),  # listen's secret
        "DOCS_TMP": str(tmp_path),
        "COLUMNS": "200",
    }
    emptied = False

    def pg_url() -> str:
        # A page's PostgreSQL commands start on an empty database, as a reader's would: what other
        # tests left in the session's database (secrets under other keys among it) is not theirs.
        nonlocal emptied
        url = str(request.getfixturevalue("pg_url"))
        if not emptied:
            run_sync(_truncate_pg(url))
            emptied = True
        return url

    ctx = Context(server, api, pg_url, env, event_id=event["id"])
    failures = await run_page(page, ctx)
    assert not failures, "\n\n".join(failures)
