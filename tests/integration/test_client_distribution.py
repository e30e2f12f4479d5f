"""The light install (`clients/paywire-client`): the SDK and the webhook verifier without the server.

Two checks. Statically, the files the distribution ships import nothing of Paywire beyond
themselves at module level. For real, the wheel is built, put into a fresh virtualenv that holds
only its declared dependencies (httpx, pydantic and what they need), and used there: it verifies a
signed webhook and calls a live server through the SDK, while FastAPI and SQLAlchemy are absent.
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import subprocess
import sys
import tomllib
import venv
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import Server

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "paywire-client"
SRC = ROOT / "src"


def shipped_files() -> dict[str, Path]:
    """Module name → source file, from the distribution's force-include table."""
    table = tomllib.loads((CLIENT / "pyproject.toml").read_text())
    include = table["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    files: dict[str, Path] = {}
    for source, target in include.items():
        path = (CLIENT / source).resolve()
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            if file.suffix != ".py":
                continue
            relative = file.relative_to(SRC).with_suffix("")
            parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
            files[".".join(parts)] = file
        assert target.startswith("paywire"), target
    return files


class _ImportsAtImportTime(ast.NodeVisitor):
    """Collects `paywire…` imports that run when the module is imported: not inside functions
    (lazy imports) nor under `if TYPE_CHECKING:`."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        pass

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        pass

    def visit_If(self, node: ast.If) -> None:
        if "TYPE_CHECKING" not in ast.unparse(node.test):
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.names.update(alias.name for alias in node.names if alias.name.startswith("paywire"))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module and node.module.startswith("paywire"):
            self.names.add(node.module)
            self.names.update(f"{node.module}.{alias.name}" for alias in node.names)


def module_level_imports(file: Path) -> set[str]:
    visitor = _ImportsAtImportTime()
    visitor.visit(ast.parse(file.read_text()))
    return visitor.names


def test_shipped_files_import_only_each_other() -> None:
    files = shipped_files()
    assert {"paywire", "paywire.sdk", "paywire.webhooks.verify"} <= set(files)
    for module, file in files.items():
        for name in module_level_imports(file):
            # `from paywire.sdk import models` names a module or an attribute: either must be shipped.
            assert name in files or name.rsplit(".", 1)[0] in files, f"{module} imports {name}, not shipped"


def dependency_closure(requirements: list[str]) -> set[str]:
    """The installed distributions `requirements` need on this Python, themselves included."""
    seen: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in seen or (requirement.marker and not requirement.marker.evaluate({"extra": ""})):
            continue
        seen.add(name)
        todo.extend(Requirement(r) for r in metadata.requires(name) or [])
    return seen


def top_level_paths(distribution: str) -> set[Path]:
    """What a distribution put into site-packages: its top-level packages and modules."""
    dist = metadata.distribution(distribution)
    paths: set[Path] = set()
    for file in dist.files or []:
        first = file.parts[0]
        if first.endswith((".dist-info", "__pycache__")) or first == "..":
            continue
        paths.add(Path(str(dist.locate_file(first))))
    return paths


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the built wheel and only its declared dependencies."""
    work = tmp_path_factory.mktemp("client-dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-build-isolation", "--no-deps", str(CLIENT), "-w", str(work)],
        check=True,
    )
    (wheel,) = work.glob("paywire_client-*.whl")
    env_dir = work / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)], check=True
    )
    requires = metadata.Distribution.at(next(site.glob("paywire_client-*.dist-info"))).requires or []
    declared = [r for r in requires if "extra ==" not in r]
    assert sorted(Requirement(r).name for r in declared) == ["httpx", "pydantic"]
    for distribution in dependency_closure(declared):
        for path in top_level_paths(distribution):
            (site / path.name).symlink_to(path)
    return python


USE_THE_CLIENT = r"""
import importlib.util, json, sys, time
for heavy in ("fastapi", "sqlalchemy", "asyncpg", "aiohttp", "uvicorn", "starlette"):
    assert importlib.util.find_spec(heavy) is None, heavy + " is installed"
from paywire import Paywire
from paywire.webhooks import generate_secret, signature_headers, verify
from paywire.schemas import Customer

secret = generate_secret()
body = json.dumps({"id": "evt_1", "type": "customer.created", "created": int(time.time()),
                   "livemode": False, "data": {"object": {"id": "cus_1"}}}).encode()
headers = signature_headers(secret, "msg_1", int(time.time()), body)
event = verify(body, headers, secret)
assert event.type == "customer.created", event

key, url = sys.argv[1], sys.argv[2]
with Paywire(key, url) as payment:
    customer = payment.customers.create(email="light@example.com")
    assert isinstance(customer, Customer)
    print(json.dumps({"customer": customer.id, "modules": sorted(m for m in sys.modules if m.startswith("paywire"))}))
"""


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_light_install_verifies_and_calls_the_api(client_venv: Path, server: Server) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PAYWIRE"))}
    proc = await asyncio.create_subprocess_exec(
        str(client_venv),
        "-c",
        USE_THE_CLIENT,
        server.test_key,
        server.url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=str(client_venv.parent),
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    result = json.loads(out)
    assert result["customer"].startswith("cus_")
    async with server.client() as api:
        fetched = await api.get(f"/api/customers/{result['customer']}")
    assert fetched.status_code == 200 and fetched.json()["email"] == "light@example.com"
    # (`paywire.events.event`, the Event class, ships in the light client; the rest of events/ does not)
    server_side = [m for m in result["modules"] if m.startswith(("paywire.db", "paywire.api", "paywire.events."))]
    assert server_side == ["paywire.events.event"]
