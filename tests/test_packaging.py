"""The wheel holds every package of the source tree with its data (py.typed, the migrations), and the migrations
run from an installed wheel.

pyproject.toml names the packages one by one: the folders become ``veilface.*`` through ``package-dir``, which
setuptools' package discovery cannot prefix. A new subpackage missing from that list is left out of the wheel
while an editable install, which reads the folders, still finds it: only a built wheel shows the gap.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from cli_helpers import SERVER_PACKAGES
from packaging.requirements import Requirement

if sys.version_info >= (3, 11):
    import tomllib
else:
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIRS = ("client", "server", "crypto", "protocol", "cli", "bench")
DATA_FILES = ("py.typed", "*.mako")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the source (a build in place would leave build/ in the worktree)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for name in PACKAGE_DIRS:
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = tmp_path_factory.mktemp("dist")
    build = [sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(source)]
    done = subprocess.run(build, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (built,) = dist.glob("*.whl")
    return built


def packaged_source_files() -> set[str]:
    """Each package's modules and data files, named as the wheel should hold them."""
    expected = set()
    for top in PACKAGE_DIRS:
        for init in (ROOT / top).rglob("__init__.py"):
            package = init.parent
            for pattern in ("*.py", *DATA_FILES):
                expected |= {f"veilface/{path.relative_to(ROOT).as_posix()}" for path in package.glob(pattern)}
    return expected


def test_the_wheel_holds_every_package_module_and_data_file(wheel: Path) -> None:
    expected = packaged_source_files()
    assert {
        "veilface/server/migrations/env.py",
        "veilface/server/migrations/script.py.mako",
        "veilface/server/migrations/matcher/0001_baseline.py",
        "veilface/server/migrations/authority/0001_baseline.py",
        "veilface/server/migrations/matcher/0002_consumed_probes.py",
        "veilface/server/migrations/authority/0002_signed_probes.py",
        "veilface/cli/py.typed",
    } <= expected
    with zipfile.ZipFile(wheel) as archive:
        missing = expected - set(archive.namelist())
    assert not missing, f"list these packages or files in pyproject.toml's [tool.setuptools]: {sorted(missing)}"


def test_the_installed_wheel_migrates_a_database(wheel: Path, tmp_path: Path) -> None:
    """From the wheel's files alone: no site initialisation, so the editable install of this checkout is not on
    the path, only the wheel's copy and the environment's dependencies."""
    target = tmp_path / "installed"
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile", "--target", str(target)]
    subprocess.run([*install, str(wheel)], check=True, capture_output=True, timeout=300)
    script = (
        "import sys; import veilface.server.migrations as m; from veilface.server.matcher.store import "
        "open_template_database; assert m.__file__.startswith(sys.argv[1]), m.__file__; "
        "print(m.upgrade_schema(open_template_database(sys.argv[2])))"
    )
    environment = {"PYTHONPATH": f"{target}:{sysconfig.get_paths()['purelib']}"}
    url = f"sqlite:///{tmp_path / 'matcher.db'}"
    done = subprocess.run(
        [sys.executable, "-S", "-c", script, str(target), url],
        env=environment,
        cwd=tmp_path,  # not the checkout, whose veilface/ folder would come first on the path
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == "['0001', '0002']\n"


def import_name(requirement: str) -> str:
    """The top-level package a requirement installs, as code imports it: ``psycopg[binary]>=3.1`` -> psycopg."""
    return Requirement(requirement).name.lower().replace("-", "_")


def test_a_client_install_pulls_no_server_or_bench_package() -> None:
    """``pip install veilface`` is the client; what the client-only tests refuse to import is exactly what the
    server and bench extras add (and starlette, which fastapi brings)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {import_name(requirement) for requirement in project["dependencies"]}
    assert not core & SERVER_PACKAGES
    extras = project["optional-dependencies"]
    added = {import_name(requirement) for extra in ("server", "bench") for requirement in extras[extra]}
    assert added - {"veilface"} == SERVER_PACKAGES - {"starlette"}
