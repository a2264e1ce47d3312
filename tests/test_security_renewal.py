"""Key renewal and key backup, as README "Key renewal" and "Backing up the authority's keys" describe them.

Renewal: `veilface keys rotate` makes new CKKS keys under the same authority signing key; a second
authority/matcher pair on them shares the first pair's databases while the first keeps serving; templates
under the old key_id are refused with 'reenrolment-required' until they are enrolled again, and then
verify. Backup: the authority's secret/ directory, archived with tar, restored on a fresh authority that
holds nothing else, still verifies the templates enrolled before.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
import server_fixtures as sf
from security_helpers import free_port, launched, readiness, service_env
from server_fixtures import ADMIN_TOKEN, DIMENSION, MODEL_ID, near, unit
from typer.testing import CliRunner

import veilface.crypto as vc
from veilface.cli.app import app
from veilface.client.api import Client
from veilface.server.keystore import write_keyset
from veilface.server.launch import start_services
from veilface.server.standin import plaintext_authority_app, plaintext_matcher_app

pytestmark = pytest.mark.e2e


def verify_refusal(session: Client, subject: str, face: np.ndarray) -> vc.ServiceError:
    with pytest.raises(vc.ServiceError) as refused:
        session.verify_embedding(subject, face)
    return refused.value


def client(url: str, shared: Path) -> Client:
    """A client that trusts the authority's signing key of the first key ceremony (what clients hold), with the
    state directory of one device, ``shared/state``."""
    return Client(url, token=ADMIN_TOKEN, authority_key=shared / "signing.pub", state_dir=shared / "state")


def seen_serials(shared: Path) -> dict[str, int]:
    """The newest bundle serial per authority fingerprint that the device's clients recorded."""
    recorded = json.loads((shared / "state" / "bundles.json").read_text())
    return {fingerprint: entry["serial"] for fingerprint, entry in recorded.items()}


@contextmanager
def pair(keys: Path, data: Path, shared: Path, **budgets: int) -> Iterator[tuple[Client, str]]:
    """An authority and a matcher on ``keys`` over the databases and pseudonym key in ``shared``; a client of it
    (see :func:`client`) and the matcher's URL."""
    env = {
        "VEILFACE_MATCHER_DATABASE_URL": f"sqlite:///{shared / 'matcher.db'}",
        "VEILFACE_AUTHORITY_DATABASE_URL": f"sqlite:///{shared / 'authority.db'}",
        "VEILFACE_PSEUDONYM_KEY_FILE": str(shared / "pseudonym.key"),
    } | {f"VEILFACE_BUDGET_{name.upper()}": str(value) for name, value in budgets.items()}
    with start_services(keys, data, operator_token=ADMIN_TOKEN, env=env) as services:
        with client(services.matcher_url, shared) as session:
            yield session, services.matcher_url


def test_rotation_moves_a_deployment_to_new_keys_while_it_keeps_serving(tmp_path: Path) -> None:
    rng = np.random.default_rng(80)
    alice, bob = unit(rng), unit(rng)
    old_keys, new_keys, shared = tmp_path / "keys", tmp_path / "keys-2", tmp_path / "shared"
    write_keyset(old_keys, vc.key_ceremony(vc.DEFAULT_PRESET, model_id=MODEL_ID, dimension=DIMENSION))
    shared.mkdir()
    shutil.copy(old_keys / "public" / "signing.pub", shared / "signing.pub")  # given to clients once

    fingerprint = vc.VerifyKey.from_pem((shared / "signing.pub").read_bytes()).fingerprint
    with pair(old_keys, tmp_path / "old", shared, per_key=5) as (old, old_url):
        old.enroll_embedding("alice", alice)
        old.enroll_embedding("bob", bob)
        assert old.verify_embedding("alice", near(rng, alice)).match is True

        rotated = CliRunner().invoke(app, ["keys", "rotate", str(old_keys), str(new_keys), "--json"])
        assert rotated.exit_code == 0, rotated.output
        ids = json.loads(rotated.stdout)
        assert ids["old_key_id"] == old.deployment().key_id != ids["key_id"]
        assert (new_keys / "public" / "signing.pub").read_bytes() == (shared / "signing.pub").read_bytes()
        assert seen_serials(shared) == {fingerprint: 1} and ids["serial"] == 2

        with pair(new_keys, tmp_path / "new", shared, per_key=5) as (new, _):
            assert new.deployment().key_id == ids["key_id"]  # the same trust anchor accepts the new bundle
            assert seen_serials(shared) == {fingerprint: 2}
            stale = verify_refusal(new, "alice", alice)
            assert stale.status == 422 and stale.problem_type.endswith("/reenrolment-required")
            assert "enrol the subject again" in stale.message
            # Not yet moved: the old pair serves, and a client that has seen serial 2 accepts its serial 1 (it
            # has not expired).
            with client(old_url, shared) as late:
                assert late.deployment().key_id == ids["old_key_id"]
                assert late.verify_embedding("bob", near(rng, bob)).match is True
            assert seen_serials(shared) == {fingerprint: 2}

            new.enroll_embedding("alice", alice, replace=True)  # re-enrolment from the reference photo
            assert new.verify_embedding("alice", near(rng, alice)).match is True
            assert new.subject("alice").key_id == ids["key_id"]
            moved = verify_refusal(old, "alice", alice)
            assert moved.problem_type.endswith("/reenrolment-required")

            # The old key's decision cap (5 here): enrolments and verifications count; past it, renewal.
            assert old.verify_embedding("bob", bob).match is True
            capped = verify_refusal(old, "bob", bob)
            assert capped.status == 429 and "the key needs renewal" in capped.message
        # (the old pair stops when this block ends; the new one took the traffic)

    with pair(new_keys, tmp_path / "new", shared, per_key=5) as (new, _):
        assert verify_refusal(new, "bob", bob).problem_type.endswith("/reenrolment-required")
        new.enroll_embedding("bob", bob, replace=True)
        assert new.verify_embedding("bob", near(rng, bob)).match is True
        assert new.verify_embedding("alice", bob).match is False

    audit = CliRunner().invoke(
        app, ["audit", "verify", "--database-url", f"sqlite:///{shared / 'authority.db'}", "--json"]
    )
    assert audit.exit_code == 0 and json.loads(audit.stdout)["rows_checked"] == 11  # both authorities, one chain


@pytest.mark.anyio
async def test_a_matcher_on_new_keys_is_not_ready_with_an_authority_on_old_ones(keys_dir: Path, tmp_path: Path) -> None:
    new_keys = tmp_path / "keys-2"
    assert CliRunner().invoke(app, ["keys", "rotate", str(keys_dir), str(new_keys)]).exit_code == 0
    matcher_keys = tmp_path / "matcher-keys"
    for role in ("evaluation", "public"):
        shutil.copytree(new_keys / role, matcher_keys / role)
    authority = plaintext_authority_app(sf.authority_settings(keys_dir, tmp_path / "authority"))
    matcher = plaintext_matcher_app(
        sf.matcher_settings(matcher_keys, tmp_path / "matcher"), authority_transport=httpx.ASGITransport(app=authority)
    )
    async with sf.lifespan(authority), sf.lifespan(matcher):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=matcher), base_url="http://m") as http:
            ready = await http.get("/readyz")
    assert ready.status_code == 503 and ready.json() == {"database": True, "authority": False}


def test_the_authority_keys_restore_from_a_backup_and_old_templates_still_verify(tmp_path: Path) -> None:
    """README's commands: `tar -C KEYS -czpf BACKUP secret` at the authority, `tar -C NEW -xzpf BACKUP` on a
    fresh one. The restored authority holds only secret/ and an empty data directory; the matcher is untouched."""
    rng = np.random.default_rng(81)
    alice = unit(rng)
    keys, data, backup = tmp_path / "keys", tmp_path / "data", tmp_path / "authority-keys.tgz"
    write_keyset(keys, vc.key_ceremony(vc.DEFAULT_PRESET, model_id=MODEL_ID, dimension=DIMENSION))
    signing_pub = tmp_path / "signing.pub"
    shutil.copy(keys / "public" / "signing.pub", signing_pub)
    with start_services(keys, data, operator_token=ADMIN_TOKEN) as services:
        with Client(services.matcher_url, token=ADMIN_TOKEN, authority_key=signing_pub) as session:
            session.enroll_embedding("alice", alice)
            before = session.verify_embedding("alice", near(rng, alice))

    subprocess.run(["tar", "-C", str(keys), "-czpf", str(backup), "secret"], check=True)
    shutil.rmtree(keys / "secret")  # the authority's host is lost, with its data
    shutil.rmtree(data / "authority")

    restored = tmp_path / "restored-keys"
    restored.mkdir()
    subprocess.run(["tar", "-C", str(restored), "-xzpf", str(backup)], check=True)
    assert sorted(p.name for p in restored.iterdir()) == ["secret"]
    assert {p.stat().st_mode & 0o777 for p in (restored / "secret").iterdir()} == {0o600}

    authority_port, matcher_port = free_port(), free_port()
    common, matcher_env = service_env(f"http://127.0.0.1:{authority_port}")
    matcher_url = f"http://127.0.0.1:{matcher_port}"
    with (
        launched("authority", restored, tmp_path / "fresh-authority", authority_port, common),
        launched("matcher", data / "matcher" / "keys", data / "matcher", matcher_port, matcher_env),
    ):
        assert readiness(matcher_url, until_ready=True).json() == {"database": True, "authority": True}
        with Client(matcher_url, token=ADMIN_TOKEN, authority_key=signing_pub) as session:
            after = session.verify_embedding("alice", near(rng, alice))
            assert session.verify_embedding("alice", unit(rng)).match is False
    assert before.match is True and after.match is True and after.key_id == before.key_id


def test_rotation_refuses_to_overwrite_keys_or_to_mix_deployments(keys_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    taken = tmp_path / "taken"
    assert runner.invoke(app, ["keys", "rotate", str(keys_dir), str(taken)]).exit_code == 0
    again = runner.invoke(app, ["keys", "rotate", str(keys_dir), str(taken)])
    assert again.exit_code == 3 and "refusing to overwrite" in again.stderr
    mixed = tmp_path / "mixed"
    shutil.copytree(keys_dir, mixed)
    (mixed / "secret" / "signing.key").write_bytes(vc.SigningKey.generate().to_pem())  # another authority's key
    refused = runner.invoke(app, ["keys", "rotate", str(mixed), str(tmp_path / "new")])
    assert refused.exit_code == 3 and "did not sign" in refused.stderr
    assert not (tmp_path / "new").exists()
