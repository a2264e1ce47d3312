"""The ``veilface`` command itself: every command listed, loaded only when run, one error printer."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from cli_helpers import SERVER_PACKAGES, error_lines, run_veilface, top_level
from typer.testing import CliRunner

from veilface.cli import errors
from veilface.cli.app import COMMANDS, LazyCommand, app
from veilface.cli.options import FaceBackend
from veilface.client.api import ProbeRefusedError
from veilface.client.faces import BACKENDS
from veilface.client.samples import sample_images
from veilface.crypto import ConfigurationError, ServiceError, SigningKey

runner = CliRunner()


def test_help_lists_every_command_and_imports_none_of_them() -> None:
    result, modules = run_veilface("--help", env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    for command in COMMANDS:
        assert f" {command.name} " in result.stdout and command.help in result.stdout
    assert {command.name for command in COMMANDS} >= {
        "enroll", "enroll-batch", "verify", "delete", "embed", "calibrate",
        "demo", "keys", "serve", "audit", "db", "bench",
    }  # fmt: skip
    loaded = {module for module in modules if module.startswith("veilface.")}
    assert loaded <= {"veilface.cli", "veilface.cli.__main__", "veilface.cli.app", "veilface.cli.errors"}
    assert not top_level(modules) & {"numpy", "tenseal", "dlib", "httpx", *SERVER_PACKAGES}


@pytest.mark.parametrize("command", COMMANDS, ids=[command.name for command in COMMANDS])
def test_the_listed_help_is_the_commands_own(command: LazyCommand) -> None:
    loaded = command.load()
    assert loaded.name == command.name
    first_paragraph = " ".join((loaded.help or "").split("\n\n")[0].split())
    assert first_paragraph == command.help


@pytest.mark.parametrize("args", [["verify", "--help"], ["enroll-batch", "--help"], ["calibrate", "--help"]])
def test_client_command_help_imports_no_server_code(args: list[str]) -> None:
    result, modules = run_veilface(*args)
    assert result.returncode == 0, result.stderr
    assert not top_level(modules) & SERVER_PACKAGES
    assert not any(module.startswith(("veilface.server", "veilface.bench")) for module in modules)


def test_client_commands_run_without_server_code(tmp_path: Path) -> None:
    """The face pipeline (embed) and a verification up to the network (no matcher listens on port 9)."""
    tom = str(sample_images()["tom_hanks"])
    embedded, modules = run_veilface("embed", "--json", tom)
    assert embedded.returncode == 0, embedded.stderr
    key = tmp_path / "signing.pub"
    key.write_bytes(SigningKey.generate().verify_key.to_pem())
    args = ["--server", "http://127.0.0.1:9", "--token", "t", "--authority-key", str(key)]
    refused, more = run_veilface("verify", "bob", tom, *args)
    assert refused.returncode == 3 and "cannot reach the matcher" in refused.stderr
    imported = modules | more
    assert "veilface.client.api" in imported and "veilface.client.faces" in imported
    assert not top_level(imported) & SERVER_PACKAGES
    assert not any(module.startswith(("veilface.server", "veilface.bench")) for module in imported)


@pytest.mark.parametrize(
    ("missing", "args", "extra"),
    [
        pytest.param({"fastapi"}, ["serve", "matcher", "--keys", "keys"], "server", id="fastapi"),
        pytest.param({"sqlalchemy"}, ["audit", "verify", "--data", "."], "server", id="sqlalchemy"),
        pytest.param({"uvicorn"}, ["demo"], "server", id="uvicorn"),
        pytest.param({"matplotlib"}, ["bench", "crypto"], "bench", id="matplotlib"),
        pytest.param(SERVER_PACKAGES, ["serve", "matcher", "--keys", "keys"], "server", id="client-only-serve"),
        pytest.param(SERVER_PACKAGES, ["db", "current", "--service", "matcher"], "server", id="client-only-db"),
        pytest.param(SERVER_PACKAGES, ["bench", "crypto"], "bench", id="client-only-bench"),
    ],
)
def test_a_missing_extra_is_one_error_line(missing: set[str], args: list[str], extra: str) -> None:
    result, modules = run_veilface(*args, not_installed=missing)
    assert result.returncode == 3
    assert error_lines(result) == [f"Error: this command needs the {extra} extra: pip install 'veilface[{extra}]'"]
    assert not top_level(modules) & missing


def test_the_face_backends_are_the_clients() -> None:
    assert tuple(backend.value for backend in FaceBackend) == BACKENDS


def test_exit_codes_follow_the_table() -> None:
    assert errors.exit_code(ProbeRefusedError("refused", status=422)) == errors.EXIT_PROBE_REFUSED == 4
    assert errors.exit_code(ServiceError("unavailable", status=503)) == errors.EXIT_FAILURE == 3
    assert errors.exit_code(ConfigurationError("unsafe")) == 3
    assert (errors.EXIT_OK, errors.EXIT_MATCH, errors.EXIT_NO_MATCH, errors.EXIT_USAGE) == (0, 0, 1, 2)


def test_an_error_a_command_raises_is_one_line_and_a_traceback_with_verbose(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("image_a,image_b\n")  # no 'same' column: calibration refuses the file
    quiet = runner.invoke(app, ["calibrate", str(pairs)])
    assert quiet.exit_code == 3 and quiet.stderr.startswith("Error: ") and len(quiet.stderr.splitlines()) == 1
    verbose = runner.invoke(app, ["--verbose", "calibrate", str(pairs)])
    assert verbose.exit_code == 3 and "Traceback" in verbose.stderr
    assert verbose.stderr.splitlines()[-1] == quiet.stderr.strip()


def test_a_mistyped_command_is_a_usage_error_that_names_the_right_one() -> None:
    result, modules = run_veilface("verfy")
    assert result.returncode == 2 and "Did you mean 'verify'?" in result.stderr
    assert not any(module.startswith(("veilface.crypto", "veilface.client")) for module in modules)


def test_an_unexpected_error_is_not_swallowed(monkeypatch: pytest.MonkeyPatch) -> None:
    class Boom(RuntimeError):
        pass

    def broken() -> None:
        raise Boom("a bug")

    probe = typer.Typer()
    probe.command("embed")(broken)
    monkeypatch.setattr("veilface.cli.client.client_app", probe)
    result = runner.invoke(app, ["embed"])
    assert isinstance(result.exception, Boom)
