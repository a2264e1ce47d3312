"""Import rules that import-linter cannot see: benchmarks use client, server and crypto by public names only,
and what only tests and benchmarks may do with the ciphers stays out of the production ciphers."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import veilface.crypto as vc

ROOT = Path(__file__).resolve().parents[1]
# Packages whose private names (a module or attribute starting with "_") the benchmarks must not use.
GUARDED = ("veilface.client", "veilface.server", "veilface.crypto", "veilface.protocol")


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _guarded(module: str) -> bool:
    return any(module == package or module.startswith(package + ".") for package in GUARDED)


def private_uses(source: str, filename: str = "<source>") -> list[str]:
    """Every use of a private name of client, server or crypto in ``source``, as "line: what".

    Caught: ``import veilface.x._y``, ``from veilface.x._y import z``, ``from veilface.x import _y``, and,
    on names bound by those imports (modules or objects, aliases followed), ``name._attribute`` and
    ``getattr(name, "_attribute")``. Any object's ``._attribute`` other than ``self``'s and ``cls``'s is
    caught too: a benchmark holds veilface objects (ciphers, clients) whose origin an import does not show.
    """
    tree = ast.parse(source, filename)
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _guarded(alias.name) and any(_private(part) for part in alias.name.split(".")):
                    found.append(f"{node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            module = node.module
            if module.startswith("veilface.") and any(_private(part) for part in module.split(".")):
                if _guarded(module):
                    found.append(f"{node.lineno}: from {module} import ...")
            for alias in node.names:
                if module.startswith("veilface.") and _private(alias.name):
                    found.append(f"{node.lineno}: from {module} import {alias.name}")
        elif isinstance(node, ast.Attribute) and _private(node.attr):
            owner = node.value
            if not (isinstance(owner, ast.Name) and owner.id in ("self", "cls")):
                found.append(f"{node.lineno}: {ast.unparse(node)}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "hasattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and _private(node.args[1].value)
        ):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def _sources() -> list[Path]:
    return [*sorted((ROOT / "bench").rglob("*.py")), ROOT / "cli" / "bench.py"]


@pytest.mark.parametrize("path", _sources(), ids=lambda path: path.relative_to(ROOT).as_posix())
def test_benchmarks_use_client_server_and_crypto_by_public_names_only(path: Path) -> None:
    assert private_uses(path.read_text(), str(path)) == []


@pytest.mark.parametrize(
    "source",
    [
        "import veilface.crypto._seal_io",
        "import veilface.crypto._seal_io as seal_io",
        "from veilface.crypto._protocol import blinding_factor",
        "from veilface.crypto import _ckks",
        "from veilface.server.matcher.app import _helper",
        "from veilface.bench.crypto import _TensealDot",
        "def f(matcher):\n    return matcher._evaluator",
        "import veilface.crypto as vc\nvc._ckks.SCHEME",
        "def f(matcher):\n    return getattr(matcher, '_relin_keys')",
    ],
)
def test_the_rule_catches_each_private_use(source: str) -> None:
    assert private_uses(source) != []


@pytest.mark.parametrize(
    "source",
    [
        "from veilface.bench._stats import timed",  # a private module of bench itself, used inside bench
        "import veilface.crypto as vc\nvc.CkksMatcherCipher",
        "from veilface.crypto.testing import compare_with_factors",
        "class A:\n    def f(self):\n        return self._inner",
        "x.__class__",
    ],
)
def test_the_rule_lets_public_uses_pass(source: str) -> None:
    assert private_uses(source) == []


@pytest.mark.parametrize("cipher", [vc.CkksMatcherCipher, vc.PlaintextMatcherCipher])
def test_the_matcher_ciphers_compare_without_a_blinding_hook(cipher: type) -> None:
    assert list(inspect.signature(cipher.compare).parameters) == ["self", "template", "probe", "threshold"]


@pytest.mark.parametrize("cipher", [vc.CkksAuthorityCipher, vc.PlaintextAuthorityCipher])
def test_the_authority_ciphers_reveal_signs_only(cipher: type) -> None:
    public = {name for name in dir(cipher) if not name.startswith("_")}
    assert "blinded_values" not in public and "decide" in public


def test_no_service_or_client_code_imports_the_crypto_testing_module() -> None:
    users = []
    for package in ("client", "server", "crypto", "protocol"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.name == "testing.py" and package == "crypto":
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom):
                    names = [f"{node.module}.{alias.name}" for alias in node.names]
                if any(name.startswith("veilface.crypto.testing") or name.endswith(".testing") for name in names):
                    users.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert users == []
