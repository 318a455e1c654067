"""A serving worker imports what serving needs, and not the heavy modules that only other paths need.

Each module in ``NOT_SERVING`` was taken off the serving path on purpose (issue: a worker's peak RSS;
figures in docs/BENCHMARKS.md, run 4, measured by ``python -m bench.memory``). The test builds the app
the way a production worker does — a real Cal.com key configured, PostgreSQL or SQLite, admin token
and Retell key set — in a fresh interpreter, runs its lifespan, answers a health check and a signed Retell
function call, and then reads ``sys.modules``. It checks which modules are loaded, not how much memory they
take, so it does not depend on the machine; a change that brings one back fails here with the module
and the reason it was kept out.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from voicebook.db import migrate

NOT_SERVING: dict[str, str] = {
    "alembic": "migrations only (`voicebook db upgrade`); serve reads the heads from the files",
    "mako": "Alembic's templates",
    "voicebook.calcom.sandbox": "the built-in Cal.com emulator, only without VOICEBOOK_CALCOM_API_KEY",
    "jinja2": "the operator's page, imported when it is first rendered",
    "fastapi.templating": "the operator's page, imported when it is first rendered",
    "babel": "the operator's page's number and date formats, on first render",
    "cryptography": "Fernet only with VOICEBOOK_SECRET_KEY; the Retell SDK's RSA helpers never",
    "retell": "the Retell SDK package builds its whole API client; only webhook_auth.py is loaded",
    "rich": "optional extra of structlog and httpx, hidden by voicebook.preload",
    "pygments": "rich's and httpx's CLI syntax highlighting",
    "click": "httpx's command-line client (uvicorn brings it in `voicebook serve` anyway)",
    "httpx._main": "httpx's command-line client",
    "typer": "the command line",
    "voicebook.cli": "the command line",
    "yaml": "tenants files, read by `voicebook tenants load`",
    "voicebook.db.tenants": "`voicebook tenants load`",
    "redis": "only with VOICEBOOK_REDIS_URL",
    "uvicorn": "the server imports the app, not the other way round",
    "hypothesis": "dev only: never imported by src",
    "schemathesis": "dev only: never imported by src",
    "pytest": "dev only: never imported by src",
    "respx": "dev only: never imported by src",
}

# Imported up front on purpose (voicebook.preload), and a sign that the app really was built.
SERVING = ("voicebook.app", "voicebook.retell.signature", "anyio._backends._asyncio", "phonenumbers")

WORKER = textwrap.dedent(
    """
    import asyncio, json, sys

    import voicebook.app

    async def main():
        import httpx
        from voicebook.retell.requests import function_call_body, signed

        app = voicebook.app.create_app()
        transport = httpx.ASGITransport(app=app)
        async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=transport, base_url="http://worker.test"
        ) as client:
            assert (await client.get("/healthz")).status_code == 200
            body = function_call_body(
                "check_availability", {"service": "Haarschnitt", "date": "2030-01-07"},
                call_id="call_imports", from_number="+491701234567", to_number="+49309999999",
            )
            raw, headers = signed(body, "key_imports_000000000000")
            answer = await client.post("/retell/functions/check_availability", content=raw, headers=headers)
            assert answer.status_code == 200, answer.text

    asyncio.run(main())
    print(json.dumps(sorted(sys.modules)))
    """
)


# `voicebook serve --workers 1` serves from its own process: the command, its pre-flight check, then the
# app factory that uvicorn would call (uvicorn.run is replaced by that call).
SERVE = textwrap.dedent(
    """
    import json, socket, sys

    import uvicorn

    def run(app, **options):
        module, _, factory = app.partition(":")
        __import__(module, fromlist=[factory]).__dict__[factory]()

    uvicorn.run = run
    from voicebook.cli.server import serve

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    serve(host="127.0.0.1", port=port, workers=1)
    print(json.dumps(sorted(sys.modules)))
    """
)
# `voicebook serve --workers N`: each worker unpickles uvicorn's config, whose protocol class comes from
# voicebook.api.server_limits, before it imports the app.
MULTI_WORKER = "import voicebook.api.server_limits\n" + WORKER
# What the command line itself needs in that process.
COMMAND_LINE = {"typer", "voicebook.cli", "click", "uvicorn"}


def worker_modules(tmp_path: Path, database_url: str, script: str = WORKER) -> set[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("VOICEBOOK_")},
        "VOICEBOOK_DATABASE_URL": database_url,
        "VOICEBOOK_CALCOM_API_KEY": "cal_live_imports_0000000000",
        "VOICEBOOK_CALCOM_BASE_URL": "https://api.cal.test",
        "VOICEBOOK_RETELL_API_KEY": "key_imports_000000000000",
        "VOICEBOOK_ADMIN_TOKEN": "admin-imports-token-0000000000",
        "VOICEBOOK_RECONCILE_INTERVAL_SECONDS": "0",
        "VOICEBOOK_LOG_LEVEL": "WARNING",
    }
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,  # no .env of the checkout
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def loaded(modules: set[str], name: str) -> list[str]:
    return sorted(m for m in modules if m == name or m.startswith(f"{name}."))


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    tmp_path = tmp_path_factory.mktemp("worker")
    url = f"sqlite:///{tmp_path / 'voicebook.db'}"
    migrate.upgrade(url)
    return tmp_path, url


@pytest.fixture(scope="module")
def modules(database: tuple[Path, str]) -> set[str]:
    return worker_modules(*database)


@pytest.fixture(scope="module")
def worker_of_many(database: tuple[Path, str]) -> set[str]:
    return worker_modules(*database, script=MULTI_WORKER)


@pytest.fixture(scope="module")
def serve_modules(database: tuple[Path, str]) -> set[str]:
    return worker_modules(*database, script=SERVE)


@pytest.mark.parametrize("name", sorted(NOT_SERVING))
def test_a_serving_worker_does_not_import(modules: set[str], name: str) -> None:
    assert loaded(modules, name) == [], f"{name} is on the serving path again: {NOT_SERVING[name]}"


@pytest.mark.parametrize("name", sorted(set(NOT_SERVING) - {"uvicorn", "click"}))
def test_a_worker_of_several_does_not_import(worker_of_many: set[str], name: str) -> None:
    assert loaded(worker_of_many, name) == [], f"{name} is on the serving path again: {NOT_SERVING[name]}"


@pytest.mark.parametrize("name", SERVING)
def test_a_serving_worker_imports(modules: set[str], name: str) -> None:
    assert name in modules


@pytest.mark.parametrize("name", sorted(set(NOT_SERVING) - COMMAND_LINE))
def test_voicebook_serve_does_not_import(serve_modules: set[str], name: str) -> None:
    assert loaded(serve_modules, name) == [], f"{name} is on the serving path again: {NOT_SERVING[name]}"


def test_voicebook_serve_checked_the_database_and_built_the_app(serve_modules: set[str]) -> None:
    assert {"voicebook.db.preflight", "voicebook.app", "voicebook.preload"} <= serve_modules
