"""Running ``veilface`` in its own process, as a full or a client-only install, and listing what it imported
(``python -X importtime``)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

#: What a client install (``pip install veilface``, no extras) does not have: the packages the server and
#: bench extras add (import names), and starlette, which fastapi brings.
SERVER_PACKAGES = frozenset(
    {
        "fastapi",
        "starlette",
        "uvicorn",
        "pydantic_settings",
        "sqlalchemy",
        "alembic",
        "psycopg",
        "prometheus_client",
        "psutil",
        "matplotlib",
    }
)

#: On PYTHONPATH, its sitecustomize makes the packages named in VEILFACE_TEST_NOT_INSTALLED unimportable.
CLIENT_ONLY_SITE = Path(__file__).resolve().parent / "client_only"


def run_veilface(
    *args: str, env: Mapping[str, str] | None = None, not_installed: Iterable[str] = ()
) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """``veilface ARGS`` as ``python -X importtime -m veilface.cli``; its result and every module it imported.

    ``not_installed``: top-level packages this interpreter refuses to import, as if they were not installed
    (``SERVER_PACKAGES``: a client-only install).
    """
    environment = {**os.environ, **(env or {})}
    refused = sorted(not_installed)
    if refused:
        path = environment.get("PYTHONPATH")
        environment["PYTHONPATH"] = os.pathsep.join([str(CLIENT_ONLY_SITE), *([path] if path else [])])
        environment["VEILFACE_TEST_NOT_INSTALLED"] = ",".join(refused)
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "veilface.cli", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )
    # importtime writes "import time: self | cumulative | <indent>module" for each module imported.
    modules = {line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    modules.discard("package")  # the header line
    return result, modules


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    """Standard error without ``-X importtime``'s lines: what the user sees."""
    return [line for line in result.stderr.splitlines() if not line.startswith("import time:")]


def top_level(modules: set[str]) -> set[str]:
    return {module.split(".")[0] for module in modules}
