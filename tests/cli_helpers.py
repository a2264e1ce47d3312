"""Running ``veilface`` in its own process and listing what it imported (``python -X importtime``)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping

#: What a client install does not have: the services' web framework, server and database packages.
SERVER_PACKAGES = frozenset(
    {"fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic", "psycopg", "prometheus_client"}
)


def run_veilface(*args: str, env: Mapping[str, str] | None = None) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """``veilface ARGS`` as ``python -X importtime -m veilface.cli``; its result and every module it imported."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "veilface.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )
    # importtime writes "import time: self | cumulative | <indent>module" for each module imported.
    modules = {line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    modules.discard("package")  # the header line
    return result, modules


def top_level(modules: set[str]) -> set[str]:
    return {module.split(".")[0] for module in modules}
