"""`veilface keys init` and the key directory it writes."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import tenseal as ts
from typer.testing import CliRunner

import veilface.crypto as vc
from veilface.cli.app import app
from veilface.server import keystore


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    directory = tmp_path_factory.mktemp("keys") / "deployment"
    result = CliRunner().invoke(app, ["keys", "init", str(directory), "--json"])
    assert result.exit_code == 0, result.output
    return directory, result.stdout


def test_layout_and_modes(key_dir: tuple[Path, str]) -> None:
    directory, _ = key_dir
    for role in ("secret", "evaluation", "public"):
        assert (directory / role / "context.bin").stat().st_size > 50_000
        meta = json.loads((directory / role / "meta.json").read_text())
        assert meta["role"] == role and meta["preset"] == vc.DEFAULT_PRESET and meta["format_version"] == 1
    for secret_file in ("context.bin", "meta.json", "signing.key"):
        assert stat.S_IMODE((directory / "secret" / secret_file).stat().st_mode) == 0o600
    assert stat.S_IMODE((directory / "secret").stat().st_mode) == 0o700
    assert (directory / "public" / "signing.pub").read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    assert not ts.context_from((directory / "public" / "context.bin").read_bytes()).is_private()
    assert not ts.context_from((directory / "evaluation" / "context.bin").read_bytes()).is_private()
    assert ts.context_from((directory / "secret" / "context.bin").read_bytes()).is_private()


def test_printed_fingerprint_is_the_signing_key(key_dir: tuple[Path, str]) -> None:
    directory, stdout = key_dir
    printed = json.loads(stdout)
    verify_key = keystore.read_verify_key(directory / "public" / "signing.pub")
    assert printed["fingerprint"] == verify_key.fingerprint
    assert printed["key_id"] == keystore.read_bundle(directory, vc.Role.PUBLIC).key_id


def test_bundles_load_and_work_together(key_dir: tuple[Path, str]) -> None:
    import numpy as np

    directory, _ = key_dir
    public = keystore.read_bundle(directory, vc.Role.PUBLIC)
    description, signature = keystore.read_public_description(directory)
    vc.verify_public_bundle(public, description, signature, keystore.read_verify_key(directory / "public/signing.pub"))
    client = vc.CkksClientCipher(public, model_id=description.model_id, dimension=description.dimension)
    matcher = vc.CkksMatcherCipher(
        keystore.read_bundle(directory, vc.Role.EVALUATION),
        model_id=description.model_id,
        dimension=description.dimension,
    )
    authority = vc.CkksAuthorityCipher(keystore.read_bundle(directory, vc.Role.SECRET))
    vector = np.linspace(-1, 1, description.dimension)
    template = client.encrypt(vector)
    assert authority.decide(matcher.compare(template, client.encrypt(vector), 0.9))[1] is vc.Outcome.MATCH
    assert keystore.read_signing_key(directory).verify_key == keystore.read_verify_key(directory / "public/signing.pub")


def test_refuses_to_overwrite(key_dir: tuple[Path, str]) -> None:
    directory, _ = key_dir
    before = (directory / "secret" / "context.bin").read_bytes()
    result = CliRunner().invoke(app, ["keys", "init", str(directory)])
    assert result.exit_code != 0
    assert "refusing to overwrite" in result.stderr
    assert (directory / "secret" / "context.bin").read_bytes() == before


def test_unknown_preset_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["keys", "init", str(tmp_path / "k"), "--preset", "nope"])
    assert result.exit_code != 0
    assert "unknown preset" in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "k" / "secret").exists()


def test_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(vc.ConfigurationError, match="keys init"):
        keystore.read_bundle(tmp_path, vc.Role.EVALUATION)
