"""The face code's module structure: no import circle inside client/, backends imported only when chosen."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import veilface.client

PACKAGE = "veilface.client"
FOLDER = Path(veilface.client.__path__[0])
BACKENDS = ("_dlib_backend", "_insightface_backend")


def client_imports(module: Path) -> set[str]:
    """The client modules ``module`` imports anywhere in its body, functions included (as import-linter sees)."""
    names = {path.stem for path in FOLDER.glob("*.py")}
    found: set[str] = set()
    for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level <= 1:
            base = (node.module or "") if node.level == 0 else ".".join(filter(None, [PACKAGE, node.module]))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            head, _, rest = target.partition(PACKAGE + ".")
            if not head and rest.split(".")[0] in names:
                found.add(rest.split(".")[0])
    return found - {module.stem}


def cycle_in(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` (module -> modules it imports), or None."""
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return [*path[path.index(target) :], target]
            if target not in state and (circle := visit(target)):
                return circle
        state[node] = "done"
        path.pop()
        return None

    for start in sorted(graph):
        if start not in state and (circle := visit(start)):
            return circle
    return None


def test_no_import_circle_inside_the_client() -> None:
    graph = {path.stem: client_imports(path) for path in FOLDER.glob("*.py")}
    assert graph["_dlib_backend"] and graph["faces"], "the import scan found nothing: is it still reading imports?"
    assert cycle_in(graph) is None, " -> ".join(cycle_in(graph) or [])


def test_the_cycle_finder_finds_a_circle() -> None:
    circle = ["_dlib_backend", "faces", "_dlib_backend"]
    assert cycle_in({"faces": {"_dlib_backend"}, "_dlib_backend": {"_face_base", "faces"}}) == circle
    assert cycle_in({"faces": {"_face_base"}, "_dlib_backend": {"_face_base"}, "_face_base": set()}) is None


def test_backends_import_neither_each_other_nor_the_factory() -> None:
    for backend in BACKENDS:
        imported = client_imports(FOLDER / f"{backend}.py")
        assert "_face_base" in imported
        assert not imported & {"faces", "calibration", *BACKENDS}, (backend, imported)


def run_fresh(script: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_factory_imports_no_backend_until_one_is_chosen() -> None:
    loaded = run_fresh(
        """
        import sys
        import veilface.client.faces, veilface.client.calibration, veilface.client.samples
        heavy = ("dlib", "insightface", "onnxruntime", "veilface.client._dlib_backend",
                 "veilface.client._insightface_backend")
        print(" ".join(name for name in heavy if name in sys.modules) or "none")
        """
    )
    assert loaded == "none"


@pytest.mark.parametrize("first", [*BACKENDS, "_dlib_detector", "_face_base"])
def test_each_face_module_imports_first_in_a_fresh_interpreter(first: str) -> None:
    out = run_fresh(
        f"""
        import importlib
        importlib.import_module("{PACKAGE}.{first}")
        from veilface.client.faces import StagedFaceEmbedder
        print("ok")
        """
    )
    assert out == "ok"
