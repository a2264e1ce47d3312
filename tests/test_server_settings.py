"""Settings, key loading and start-up refusals: unsafe settings, secret keys in the matcher, the CLI."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from server_fixtures import AUTHORITY_TOKEN, OPERATOR_TOKENS, authority_settings, matcher_settings
from typer.testing import CliRunner

from veilface.cli.app import app as cli_app
from veilface.crypto import ConfigurationError
from veilface.server.matcher import create_matcher_app
from veilface.server.settings import DEFAULT_THRESHOLDS, MatcherSettings, parse_operator_tokens, token_id


def test_operator_tokens_and_scopes_parse() -> None:
    tokens = parse_operator_tokens(" alpha-token-0123456789 , beta-token-0123456789:enroll+verify ,")
    assert [sorted(t.scopes) for t in tokens] == [["admin", "enroll", "verify"], ["enroll", "verify"]]
    assert tokens[0].token_id == token_id("alpha-token-0123456789") and "alpha" not in tokens[0].token_id
    for bad in ("tok:fly", "tok:", ":admin", "to ken"):
        with pytest.raises(ConfigurationError):
            parse_operator_tokens(bad)


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VEILFACE_OPERATOR_TOKENS", OPERATOR_TOKENS)
    monkeypatch.setenv("VEILFACE_AUTHORITY_TOKEN", AUTHORITY_TOKEN)
    monkeypatch.setenv("VEILFACE_MATCH_THRESHOLD", "0.5")
    monkeypatch.setenv("VEILFACE_MATCHER_WORKERS", "3")
    monkeypatch.setenv("VEILFACE_MATCHER_DATABASE_URL", "postgresql+psycopg://u:p@db/veilface")
    settings = MatcherSettings(matcher_keys_dir=tmp_path)
    assert settings.threshold_for("any-model") == 0.5 and settings.matcher_workers == 3
    assert settings.database_url == "postgresql+psycopg://u:p@db/veilface"
    assert len(settings.operators()) == 3
    monkeypatch.delenv("VEILFACE_MATCHER_DATABASE_URL")
    assert MatcherSettings(matcher_keys_dir=tmp_path, matcher_data_dir=tmp_path).database_url.startswith("sqlite:")


def test_thresholds_default_per_model_only(tmp_path: Path) -> None:
    settings = matcher_settings(tmp_path, tmp_path)
    assert settings.threshold_for("dlib-resnet-v1-128") == DEFAULT_THRESHOLDS["dlib-resnet-v1-128"]
    with pytest.raises(ConfigurationError, match="VEILFACE_MATCH_THRESHOLD"):
        settings.threshold_for("arcface-r100-512")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"operator_tokens": ""}, "VEILFACE_OPERATOR_TOKENS"),
        ({"authority_token": ""}, "VEILFACE_AUTHORITY_TOKEN"),
        ({"environment": "production", "operator_tokens": "short"}, "at least 16"),
        ({"environment": "production", "authority_token": "short-internal-token"}, "at least 32"),
        ({"environment": "production", "authority_url": "http://10.0.0.5:8401"}, "https"),
        ({"authority_url": "ftp://authority"}, "http"),
    ],
)
def test_unsafe_matcher_settings_are_refused(tmp_path: Path, overrides: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        matcher_settings(tmp_path, tmp_path, **overrides)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"authority_token": ""}, "VEILFACE_AUTHORITY_TOKEN is not set"),
        ({"environment": "production", "authority_token": "short-internal-token"}, "at least 32"),
    ],
)
def test_unsafe_authority_settings_are_refused(tmp_path: Path, overrides: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        authority_settings(tmp_path, tmp_path, **overrides)


def test_unsafe_settings_from_the_environment_are_refused_when_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("VEILFACE_OPERATOR_TOKENS", "short")
    monkeypatch.setenv("VEILFACE_AUTHORITY_TOKEN", AUTHORITY_TOKEN)
    with pytest.raises(ConfigurationError, match="at least 16"):
        MatcherSettings(matcher_keys_dir=tmp_path)
    monkeypatch.setenv("VEILFACE_ENVIRONMENT", "development")
    assert len(MatcherSettings(matcher_keys_dir=tmp_path).operators()) == 1


def test_production_accepts_a_sound_configuration(tmp_path: Path) -> None:
    for url in ("http://127.0.0.1:8401", "http://localhost:8401", "https://auth.example"):
        assert matcher_settings(tmp_path, tmp_path, environment="production", authority_url=url).authority_url == url
    assert authority_settings(tmp_path, tmp_path, environment="production").environment == "production"


def test_matcher_refuses_the_key_ceremony_directory(keys_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="never hold the secret key"):
        create_matcher_app(matcher_settings(keys_dir, tmp_path))


@pytest.mark.parametrize("bundle", ["evaluation", "public"])
def test_matcher_refuses_a_bundle_holding_a_secret_key(
    keys_dir: Path, matcher_keys_dir: Path, tmp_path: Path, bundle: str
) -> None:
    tampered = tmp_path / "keys"
    shutil.copytree(matcher_keys_dir, tampered)
    shutil.copy(keys_dir / "secret" / "context.bin", tampered / bundle / "context.bin")
    with pytest.raises(ConfigurationError, match=r"secret key|signed|key_id"):
        create_matcher_app(matcher_settings(tampered, tmp_path / "data"))
    assert not (tmp_path / "data" / "matcher.db").exists()


def test_cli_refuses_a_secret_key_with_one_error_line(keys_dir: Path, tmp_path: Path) -> None:
    env = {"VEILFACE_OPERATOR_TOKENS": OPERATOR_TOKENS, "VEILFACE_AUTHORITY_TOKEN": AUTHORITY_TOKEN}
    result = CliRunner(env=env).invoke(cli_app, ["serve", "matcher", "--keys", str(keys_dir), "--data", str(tmp_path)])
    assert result.exit_code == 3
    assert result.output.startswith("Error: ") and "secret" in result.output and "Traceback" not in result.output


def test_cli_reports_bad_settings_by_variable_name(matcher_keys_dir: Path, tmp_path: Path) -> None:
    env = {"VEILFACE_OPERATOR_TOKENS": OPERATOR_TOKENS, "VEILFACE_MATCHER_WORKERS": "many"}
    result = CliRunner(env=env).invoke(
        cli_app, ["serve", "matcher", "--keys", str(matcher_keys_dir), "--data", str(tmp_path)]
    )
    assert result.exit_code == 3 and "VEILFACE_MATCHER_WORKERS" in result.output


def test_plaintext_stand_in_is_out_of_reach_of_the_production_entry_points() -> None:
    code = (
        "import sys, veilface.cli.app, veilface.server.launch, veilface.server.matcher, "
        "veilface.server.authority; sys.exit('veilface.server.standin' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
    server = Path(__file__).resolve().parents[1] / "server"
    users = [
        path.relative_to(server).as_posix()
        for path in server.rglob("*.py")
        if "Plaintext" in path.read_text() or "standin" in path.read_text()
    ]
    assert sorted(users) == ["launch.py", "standin.py"]
    assert "STANDIN_MODULE if plaintext" in (server / "launch.py").read_text()
