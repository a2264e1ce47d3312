"""`veilface enroll | verify | delete | demo` against real services on loopback, with real faces."""

from __future__ import annotations

import io
import json
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import SERVER_PACKAGES, run_veilface
from PIL import Image, ImageOps
from server_fixtures import unnormalised_ckks
from typer.testing import CliRunner, Result

import veilface.crypto as vc
from veilface.cli.app import app
from veilface.client.api import Client, ProbeRefusedError
from veilface.client.samples import sample_images
from veilface.server.launch import RunningServices, start_services

pytestmark = pytest.mark.e2e


class Deployment:
    def __init__(self, services: RunningServices, keys: Path, token: str) -> None:
        self.services, self.keys, self.token = services, keys, token

    @property
    def env(self) -> dict[str, str]:
        return {
            "VEILFACE_SERVER": self.services.matcher_url,
            "VEILFACE_TOKEN": self.token,
            "VEILFACE_AUTHORITY_KEY": str(self.keys / "public" / "signing.pub"),
        }

    def run(self, *args: str, env: dict[str, str] | None = None) -> Result:
        return CliRunner().invoke(app, list(args), env={**self.env, **(env or {})})


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, keys_dir: Path) -> Iterator[Deployment]:
    token = secrets.token_urlsafe(16)
    with start_services(keys_dir, tmp_path_factory.mktemp("cli-ops") / "data", operator_token=token) as services:
        yield Deployment(services, keys_dir, token)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("photos")
    samples = sample_images()
    with Image.open(samples["tom_hanks"]) as tom:
        mirrored = ImageOps.mirror(tom.convert("RGB")).resize((224, 224))
    mirrored.save(folder / "tom_mirrored.jpg", quality=85)
    with Image.open(samples["t1"]) as group:
        group.convert("RGB").crop((780, 0, 1090, 300)).resize((620, 600)).save(folder / "stranger.png")
    (folder / "not_an_image.jpg").write_bytes(b"this is not a JPEG")
    return {
        "tom": samples["tom_hanks"],
        "tom_mirrored": folder / "tom_mirrored.jpg",
        "stranger": folder / "stranger.png",
        "group": samples["t1"],
        "junk": folder / "not_an_image.jpg",
    }


def test_enroll_verify_delete(deployment: Deployment, photos: dict[str, Path]) -> None:
    enrolled = deployment.run("enroll", "alice", str(photos["tom"]))
    assert enrolled.exit_code == 0, enrolled.output
    assert "enrolled alice" in enrolled.stdout

    genuine = deployment.run("verify", "alice", str(photos["tom_mirrored"]))
    assert genuine.exit_code == 0, genuine.output
    assert "alice: match" in genuine.stdout

    impostor = deployment.run("verify", "alice", str(photos["stranger"]))
    assert impostor.exit_code == 1, impostor.output
    assert "alice: no match" in impostor.stdout

    again = deployment.run("enroll", "alice", str(photos["tom"]))
    assert again.exit_code == 3 and "409" in again.stderr
    replaced = deployment.run("enroll", "alice", str(photos["tom"]), "--replace")
    assert replaced.exit_code == 0, replaced.output

    assert deployment.run("delete", "alice").exit_code == 0
    gone = deployment.run("verify", "alice", str(photos["tom"]))
    assert gone.exit_code == 3 and "404" in gone.stderr
    assert deployment.run("delete", "alice").exit_code == 3


def test_verify_json_is_the_signed_record_alone(deployment: Deployment, photos: dict[str, Path]) -> None:
    assert deployment.run("enroll", "bob", str(photos["tom"])).exit_code == 0
    result = deployment.run("verify", "bob", str(photos["tom_mirrored"]), "--json")
    assert result.exit_code == 0, result.output
    record = vc.DecisionRecord.from_dict(json.loads(result.stdout))
    key = vc.VerifyKey.from_pem((deployment.keys / "public" / "signing.pub").read_bytes())
    vc.verify_decision(record, key)
    assert record.match is True and record.subject_id == "bob"
    assert set(json.loads(result.stdout)) >= {
        "request_id", "subject_id", "match", "key_id", "issued_at", "client_nonce", "probe_sha256", "signature"
    }  # fmt: skip


def test_a_client_only_install_enrols_and_verifies(deployment: Deployment, photos: dict[str, Path]) -> None:
    """``pip install veilface`` without extras: in a process that cannot import any package of the server and
    bench extras, ``veilface enroll`` and ``veilface verify`` work against the real services."""
    enrolled, modules = run_veilface(
        "enroll", "client-only", str(photos["tom"]), env=deployment.env, not_installed=SERVER_PACKAGES
    )
    assert enrolled.returncode == 0, enrolled.stderr
    assert "enrolled client-only" in enrolled.stdout
    verified, more = run_veilface(
        "verify", "client-only", str(photos["tom_mirrored"]), env=deployment.env, not_installed=SERVER_PACKAGES
    )
    assert verified.returncode == 0, verified.stderr
    assert "client-only: match" in verified.stdout
    imported = modules | more
    assert "veilface.client.api" in imported and "veilface.crypto" in imported
    assert not any(module.startswith(("veilface.server", "veilface.bench")) for module in imported)


def test_trust_is_required(deployment: Deployment, photos: dict[str, Path], tmp_path: Path) -> None:
    missing = deployment.run("verify", "x", str(photos["tom"]), env={"VEILFACE_AUTHORITY_KEY": ""})
    assert missing.exit_code == 2 and "authority key" in missing.stderr
    stranger_key = tmp_path / "other.pub"
    stranger_key.write_bytes(vc.SigningKey.generate().verify_key.to_pem())
    wrong = deployment.run("enroll", "carol", str(photos["tom"]), env={"VEILFACE_AUTHORITY_KEY": str(stranger_key)})
    assert wrong.exit_code == 3 and "signature" in wrong.stderr
    # nothing was enrolled under an unchecked key
    assert deployment.run("verify", "carol", str(photos["tom"])).exit_code == 3


def test_tokens(deployment: Deployment, photos: dict[str, Path]) -> None:
    no_token = deployment.run("enroll", "dave", str(photos["tom"]), env={"VEILFACE_TOKEN": ""})
    assert no_token.exit_code == 2 and "token" in no_token.stderr
    bad = deployment.run("enroll", "dave", str(photos["tom"]), env={"VEILFACE_TOKEN": "wrong-token"})
    assert bad.exit_code == 3 and "401" in bad.stderr


def test_bad_images_are_one_line_errors(deployment: Deployment, photos: dict[str, Path]) -> None:
    junk = deployment.run("enroll", "erin", str(photos["junk"]))
    assert junk.exit_code == 3
    assert junk.stderr.startswith("Error: ") and "Traceback" not in junk.output
    group = deployment.run("enroll", "erin", str(photos["group"]))
    assert group.exit_code == 3 and "6 faces" in group.stderr
    largest = deployment.run("enroll", "erin", str(photos["group"]), "--take-largest")
    assert largest.exit_code == 0, largest.output
    missing = deployment.run("enroll", "erin", "/nonexistent/photo.jpg", "--replace")
    assert missing.exit_code == 3 and "Traceback" not in missing.output


def test_unreachable_server(photos: dict[str, Path], tmp_path: Path) -> None:
    key = tmp_path / "k.pub"
    key.write_bytes(vc.SigningKey.generate().verify_key.to_pem())
    args = ["verify", "x", str(photos["tom"]), "--server", "http://127.0.0.1:9", "--token", "t"]
    result = CliRunner().invoke(app, [*args, "--authority-key", str(key)])
    assert result.exit_code == 3 and "cannot reach the matcher" in result.stderr


def test_delete_needs_no_authority_key(deployment: Deployment, photos: dict[str, Path]) -> None:
    assert deployment.run("enroll", "frank", str(photos["tom"])).exit_code == 0
    deleted = deployment.run("delete", "frank", env={"VEILFACE_AUTHORITY_KEY": ""})
    assert deleted.exit_code == 0, deleted.output
    assert deployment.run("verify", "frank", str(photos["tom"])).exit_code == 3


@pytest.mark.parametrize(
    ("override", "message"),
    [
        pytest.param({"VEILFACE_SERVER": "http://[::1"}, "not a valid http(s) URL", id="malformed-url"),
        pytest.param({"VEILFACE_SERVER": "ftp://example.org"}, "not a valid http(s) URL", id="other-scheme"),
        pytest.param({"VEILFACE_AUTHORITY_KEY": "/"}, "cannot read authority key", id="key-is-a-directory"),
    ],
)
def test_bad_settings_are_one_line_errors(
    deployment: Deployment, photos: dict[str, Path], override: dict[str, str], message: str
) -> None:
    result = deployment.run("verify", "x", str(photos["tom"]), env=override)
    assert result.exit_code == 3, result.output
    assert result.stderr.startswith("Error: ") and message in result.stderr
    assert "Traceback" not in result.output


def test_demo_refuses_to_overwrite_kept_keys(keys_dir: Path, tmp_path: Path) -> None:
    shutil.copytree(keys_dir, tmp_path / "keys")
    before = sorted(p.name for p in (tmp_path / "keys").iterdir())
    result = CliRunner().invoke(app, ["demo", "--keep", str(tmp_path)])
    assert result.exit_code == 3 and "already holds keys" in result.stderr
    assert "Traceback" not in result.output
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == before  # nothing staged is left behind


def test_enroll_batch_enrols_good_rows_and_reports_the_others(
    deployment: Deployment, photos: dict[str, Path], tmp_path: Path
) -> None:
    assert deployment.run("enroll", "batch-taken", str(photos["tom"])).exit_code == 0
    listing = tmp_path / "people.csv"
    rows = [
        ("batch-tom", photos["tom"]),  # absolute paths work, relative ones are read from the CSV's folder
        ("batch-junk", photos["junk"]),
        ("batch-group", photos["group"]),
        ("batch-taken", photos["tom"]),
    ]
    listing.write_text("subject_id,image\n" + "".join(f"{subject},{image}\n" for subject, image in rows))
    result = deployment.run("enroll-batch", str(listing), "--json")
    assert result.exit_code == 3, result.output
    answers = json.loads(result.stdout)  # the JSON alone on standard output
    assert [(a["subject_id"], a["enrolled"]) for a in answers] == [
        ("batch-tom", True), ("batch-junk", False), ("batch-group", False), ("batch-taken", False)
    ]  # fmt: skip
    assert "6 faces" in answers[2]["error"] and "409" in answers[3]["error"]
    assert deployment.run("verify", "batch-tom", str(photos["tom_mirrored"])).exit_code == 0
    assert deployment.run("verify", "batch-group", str(photos["tom"])).exit_code == 3  # never enrolled

    (tmp_path / "relative.png").write_bytes(photos["tom"].read_bytes())
    listing.write_text("subject_id,image\nbatch-relative,relative.png\n")
    done = deployment.run("enroll-batch", str(listing))
    assert done.exit_code == 0, done.output
    assert "enrolled 1 of 1" in done.stdout


def test_enroll_batch_refuses_a_bad_listing(deployment: Deployment, tmp_path: Path) -> None:
    listing = tmp_path / "bad.csv"
    listing.write_text("name,photo\nx,y.png\n")
    result = deployment.run("enroll-batch", str(listing))
    assert result.exit_code == 2 and "subject_id,image" in result.stderr
    listing.write_text("subject_id,image\nx,\n")
    assert deployment.run("enroll-batch", str(listing)).exit_code == 2
    assert deployment.run("enroll-batch", str(tmp_path / "missing.csv")).exit_code == 2


def test_enroll_batch_stops_when_the_matcher_is_at_fault(
    deployment: Deployment, photos: dict[str, Path], tmp_path: Path
) -> None:
    listing = tmp_path / "stop.csv"
    listing.write_text(f"subject_id,image\nstop-a,{photos['tom']}\nstop-b,{photos['tom']}\n")
    result = deployment.run("enroll-batch", str(listing), env={"VEILFACE_TOKEN": "wrong-token-wrong-token"})
    assert result.exit_code == 3 and result.stderr.count("401") == 1  # one error line, not one per row


def test_scaled_probe_is_refused_end_to_end(deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> None:
    """A client that skips normalisation (or scales its probe) gets 422 and the CLI exits 4."""
    key = deployment.keys / "public" / "signing.pub"
    with Client(deployment.services.matcher_url, token=deployment.token, authority_key=key) as client:
        face = np.random.default_rng(0).normal(size=128)
        client.enroll_embedding("frank", face)
        scaled = unnormalised_ckks(client.cipher(), 1.2 * face / np.linalg.norm(face), monkeypatch)
        with pytest.raises(ProbeRefusedError) as info:
            client.verify_ciphertext("frank", scaled)
        assert info.value.status == 422
        assert client.verify_embedding("frank", face).match is True

    def refused(self: Client, subject: str, image: object, *, take_largest: bool = False) -> None:
        raise ProbeRefusedError("422 Unprocessable: probe refused", status=422)

    monkeypatch.setattr(Client, "verify", refused)
    result = deployment.run("verify", "frank", str(Path(__file__)))
    assert result.exit_code == 4 and "normalised" in result.stderr


def test_demo_runs_offline_and_passes() -> None:
    result = subprocess.run([sys.executable, "-m", "veilface.cli", "demo"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("no match") >= 2 and "all decisions as expected" in result.stdout
    assert "genuine" in result.stdout and "impostor" in result.stdout


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(app, ["--help"])
    for command in ("enroll", "verify", "delete", "demo", "keys", "embed", "calibrate", "serve", "bench"):
        assert command in result.stdout


def test_image_bytes_work_too(deployment: Deployment, photos: dict[str, Path]) -> None:
    key = deployment.keys / "public" / "signing.pub"
    buffer = io.BytesIO()
    Image.open(photos["tom_mirrored"]).save(buffer, format="PNG")
    with Client(deployment.services.matcher_url, token=deployment.token, authority_key=key) as client:
        client.enroll("grace", photos["tom"].read_bytes())
        assert client.verify("grace", buffer.getvalue()).match is True
        assert set(vars(client.subject("grace"))) >= {"key_id", "model_id", "created_at", "updated_at"}
