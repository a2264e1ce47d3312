"""Bundle freshness: the authority's signature over the public bundle carries a serial and an expiry.

`keys init` signs serial 1 and an expiry, `keys rotate` the next serial, `keys extend` a later expiry for the
same keys. Clients refuse an expired bundle, keep the newest serial they have seen per authority, accept an
older serial until it expires (README, "Key renewal"), and refuse an undated bundle (made before serials)
once they have seen a dated one from the same authority. Servers keep loading undated bundles.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import numpy as np
import pytest
from server_fixtures import ADMIN_TOKEN, DIMENSION, MODEL_ID, near, unit
from typer.testing import CliRunner

import veilface.crypto as vc
from veilface.cli.app import app
from veilface.client.api import Client, Deployment
from veilface.client.state import STATE_DIR_ENV, SeenSerials, default_state_dir
from veilface.protocol import PublicKeysAnswer
from veilface.server.keystore import (
    load_matcher_keys,
    read_public_description,
    read_signing_key,
    write_keyset,
    write_public_description,
)
from veilface.server.launch import start_services

NOW = datetime.now(timezone.utc)


def later(days: float) -> str:
    return vc._keys.expiry_after(days)


def signed(keys: vc.KeySet, **changes: object) -> PublicKeysAnswer:
    """What a matcher serves: the public bundle with a description signed by the authority."""
    description = dataclasses.replace(keys.description, **changes)  # type: ignore[arg-type]
    return PublicKeysAnswer.of(keys.public, description, description.sign(keys.signing_key))


def deployment(keys: vc.KeySet, answer: PublicKeysAnswer, state: Path) -> Deployment:
    """A client's view of a matcher serving ``answer``."""
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=answer.model_dump()))
    authority_key = keys.signing_key.verify_key
    with Client(
        "http://matcher.invalid", token="t", authority_key=authority_key, transport=transport, state_dir=state
    ) as c:
        return c.deployment()


def test_the_description_signs_its_serial_and_expiry(keyset: vc.KeySet) -> None:
    description, verify_key = keyset.description, keyset.signing_key.verify_key
    assert description.serial == 1 and description.dated and not description.expired()
    expires = description.expires()
    assert expires is not None and abs(expires - (NOW + timedelta(days=vc.DEFAULT_VALID_DAYS))) < timedelta(minutes=5)
    assert set(description.to_dict()) >= {"serial", "expires_at"}
    assert vc.PublicDescription.from_dict(description.to_dict()) == description
    for forged in ({"serial": 7}, {"expires_at": later(3650)}):
        with pytest.raises(vc.SignatureError):
            dataclasses.replace(description, **forged).verify(keyset.signature, verify_key)  # type: ignore[arg-type]
    broken = [
        {"serial": 0},
        {"serial": "1"},
        {"serial": True},
        {"expires_at": "next year"},
        {"expires_at": "2030-01-01T00:00:00"},  # no offset
        {"expires_at": None},
    ]
    for change in broken:
        with pytest.raises(vc.SignatureError, match="invalid serial or expiry"):
            vc.PublicDescription.from_dict(description.to_dict() | change)
    with pytest.raises(vc.SignatureError, match="invalid serial or expiry"):
        vc.PublicDescription.from_dict({k: v for k, v in description.to_dict().items() if k != "serial"})
    assert description.expired(expires) and not description.expired(expires - timedelta(seconds=1))


def test_an_undated_description_of_an_earlier_release_still_verifies_and_loads(
    keyset: vc.KeySet, tmp_path: Path
) -> None:
    """What `keys init` wrote before serials: no serial or expiry in the signed JSON. Servers load it."""
    undated = dataclasses.replace(keyset.description, serial=0, expires_at=None)
    assert set(undated.to_dict()) == {
        "format_version", "key_id", "preset", "model_id", "dimension", "public_bundle_sha256",
    }  # fmt: skip
    assert vc.PublicDescription.from_dict(undated.to_dict()) == undated
    keys = tmp_path / "keys"
    write_keyset(keys, dataclasses.replace(keyset, description=undated, signature=undated.sign(keyset.signing_key)))
    matcher = tmp_path / "matcher-keys"
    for role in ("evaluation", "public"):
        shutil.copytree(keys / role, matcher / role)
    loaded = load_matcher_keys(matcher)
    assert loaded.description == undated and not loaded.description.expired()


def test_the_matcher_refuses_to_serve_an_expired_bundle(keyset: vc.KeySet, tmp_path: Path) -> None:
    expired = dataclasses.replace(keyset.description, expires_at=vc._keys.expiry_after(-1))
    write_keyset(
        tmp_path / "keys", dataclasses.replace(keyset, description=expired, signature=expired.sign(keyset.signing_key))
    )
    shutil.rmtree(tmp_path / "keys" / "secret")
    with pytest.raises(vc.ConfigurationError, match=r"expired at .*run 'veilface keys extend KEYS' at the authority"):
        load_matcher_keys(tmp_path / "keys")


def test_the_client_refuses_an_expired_bundle_and_keeps_the_newest_serial(keyset: vc.KeySet, tmp_path: Path) -> None:
    state = tmp_path / "state"
    fingerprint = keyset.signing_key.verify_key.fingerprint
    assert deployment(keyset, signed(keyset), state).key_id == keyset.key_id
    assert SeenSerials(state).newest(fingerprint) == 1
    deployment(keyset, signed(keyset, serial=2), state)  # after `keys rotate` (same bundle here, for brevity)
    assert SeenSerials(state).newest(fingerprint) == 2
    deployment(keyset, signed(keyset, serial=1), state)  # the old pair, during the renewal: still accepted
    assert SeenSerials(state).newest(fingerprint) == 2
    recorded = json.loads((state / "bundles.json").read_text())
    assert recorded == {
        fingerprint: {"serial": 2, "key_id": keyset.key_id, "expires_at": keyset.description.expires_at}
    }

    with pytest.raises(vc.SignatureError, match="expired at"):
        deployment(keyset, signed(keyset, serial=3, expires_at=later(-0.001)), state)
    assert SeenSerials(state).newest(fingerprint) == 2  # an expired bundle is not recorded either
    # A later expiry for the same serial (`keys extend`) is accepted; an expiry changed without the
    # authority's signature is not.
    deployment(keyset, signed(keyset, serial=2, expires_at=later(400)), state)
    tampered = signed(keyset).model_copy(
        update={"description": keyset.description.to_dict() | {"expires_at": later(9)}}
    )
    with pytest.raises(vc.SignatureError):
        deployment(keyset, tampered, state)

    undated = signed(keyset, serial=0, expires_at=None)
    with pytest.raises(vc.SignatureError, match=r"without an expiry.*serial 2 seen"):
        deployment(keyset, undated, state)
    # A device that never saw a dated bundle from this authority accepts it, as before serials.
    assert deployment(keyset, undated, tmp_path / "new-device").key_id == keyset.key_id
    assert not (tmp_path / "new-device" / "bundles.json").exists()
    assert (state.stat().st_mode & 0o777, (state / "bundles.json").stat().st_mode & 0o777) == (0o700, 0o600)


def test_client_state_that_cannot_be_written_or_read(
    keyset: vc.KeySet, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    with caplog.at_level(logging.WARNING, logger="veilface.client"):
        assert deployment(keyset, signed(keyset), blocked).key_id == keyset.key_id  # the expiry still holds
    assert "cannot record the bundle's serial" in caplog.text
    with pytest.raises(vc.SignatureError, match="expired"):
        deployment(keyset, signed(keyset, expires_at=later(-1)), blocked)
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "bundles.json").write_text("{")
    with pytest.raises(vc.VeilfaceError, match=r"cannot read .*bundles.json; delete it"):
        deployment(keyset, signed(keyset), corrupt)
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path / "configured"))
    assert default_state_dir() == tmp_path / "configured"
    monkeypatch.delenv(STATE_DIR_ENV)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert default_state_dir() == tmp_path / "xdg" / "veilface"


def keys(*args: str) -> dict[str, object]:
    result = CliRunner().invoke(app, ["keys", *args, "--json"])
    assert result.exit_code == 0, result.output
    summary: dict[str, object] = json.loads(result.stdout)
    return summary


def days_left(expires_at: object) -> float:
    assert isinstance(expires_at, str)
    return (vc._keys.parse_expiry(expires_at) - datetime.now(timezone.utc)) / timedelta(days=1)


def test_keys_init_rotate_and_extend_sign_serials_and_expiries(tmp_path: Path) -> None:
    first, second = tmp_path / "keys", tmp_path / "keys-2"
    created = keys("init", str(first), "--valid-days", "30")
    assert created["serial"] == 1 and 29.9 < days_left(created["expires_at"]) <= 30
    assert read_public_description(first)[0].expires_at == created["expires_at"]
    rotated = keys("rotate", str(first), str(second))
    assert rotated["serial"] == 2 and 364.9 < days_left(rotated["expires_at"]) <= 365

    context = (first / "public" / "context.bin").read_bytes()
    extended = keys("extend", str(first), "--valid-days", "400")
    assert (extended["key_id"], extended["serial"], extended["previous_expires_at"]) == (
        created["key_id"], 1, created["expires_at"],
    )  # fmt: skip
    assert 399.9 < days_left(extended["expires_at"]) <= 400
    description, signature = read_public_description(first)
    description.verify(signature, read_signing_key(first).verify_key)
    assert description.expires_at == extended["expires_at"] and description.serial == 1
    assert (first / "public" / "context.bin").read_bytes() == context  # the same keys
    assert (first / "public" / "meta.json").stat().st_mode & 0o777 == 0o644

    refused = CliRunner().invoke(app, ["keys", "extend", str(first), "--valid-days", "0"])
    assert refused.exit_code == 2


def test_a_deployment_from_before_serials_is_extended_before_it_is_rotated(keyset: vc.KeySet, tmp_path: Path) -> None:
    old = tmp_path / "keys"
    undated = dataclasses.replace(keyset.description, serial=0, expires_at=None)
    write_keyset(old, dataclasses.replace(keyset, description=undated, signature=undated.sign(keyset.signing_key)))
    refused = CliRunner().invoke(app, ["keys", "rotate", str(old), str(tmp_path / "keys-2")])
    assert refused.exit_code == 3 and not (tmp_path / "keys-2").exists()
    assert refused.stderr.startswith(f"Error: {old}/public has no serial or expiry") and "keys extend" in refused.stderr
    assert keys("extend", str(old))["serial"] == 1
    assert keys("rotate", str(old), str(tmp_path / "keys-2"))["serial"] == 2


def test_an_expired_deployment_is_renewed_by_keys_extend_and_a_restart(keyset: vc.KeySet, tmp_path: Path) -> None:
    """Real services: a matcher whose bundle expired does not start; `keys extend`, and it serves again, to a
    client that had recorded the bundle's serial before."""
    deployment_keys, state = tmp_path / "keys", tmp_path / "state"
    write_keyset(deployment_keys, keyset)
    signing_pub = deployment_keys / "public" / "signing.pub"
    face = unit(np.random.default_rng(90))
    with start_services(deployment_keys, tmp_path / "data", operator_token=ADMIN_TOKEN, plaintext=True) as services:
        with Client(services.matcher_url, token=ADMIN_TOKEN, authority_key=signing_pub, state_dir=state) as client:
            cipher = vc.PlaintextClientCipher(key_id=client.deployment().key_id, model_id=MODEL_ID, dimension=DIMENSION)
            client.enroll_ciphertext("una", cipher.encrypt(face))
    expired = keyset.description.extended(-1)
    write_public_description(deployment_keys, expired, expired.sign(keyset.signing_key))
    with pytest.raises(vc.ServiceError, match="the matcher exited during start-up"):
        start_services(deployment_keys, tmp_path / "data", operator_token=ADMIN_TOKEN, plaintext=True)
    assert "expired at" in (tmp_path / "data" / "matcher.log").read_text()

    assert keys("extend", str(deployment_keys), "--valid-days", "10")["serial"] == 1
    with start_services(deployment_keys, tmp_path / "data", operator_token=ADMIN_TOKEN, plaintext=True) as services:
        with Client(services.matcher_url, token=ADMIN_TOKEN, authority_key=signing_pub, state_dir=state) as client:
            assert (
                9.9
                < days_left(client.deployment().bundle and read_public_description(deployment_keys)[0].expires_at)
                <= 10
            )
            assert client.verify_ciphertext("una", cipher.encrypt(near(np.random.default_rng(91), face))).match is True
    assert SeenSerials(state).newest(keyset.signing_key.verify_key.fingerprint) == 1
