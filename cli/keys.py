"""``veilface keys init | rotate | extend``: the key ceremony, key renewal and bundle renewal, run at the
authority (secret keys)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from veilface.cli.errors import fail
from veilface.cli.options import Dimension, Json, ModelId, Preset
from veilface.crypto import (
    DEFAULT_PRESET,
    DEFAULT_VALID_DAYS,
    KeySet,
    PublicDescription,
    SignatureError,
    SigningKey,
    key_ceremony,
)
from veilface.protocol.face_models import DEFAULT_MODEL
from veilface.server.keystore import (
    KeysExistError,
    read_public_description,
    read_signing_key,
    write_keyset,
    write_public_description,
)

keys_app = typer.Typer(help="Key ceremony and key management (run at the authority).", no_args_is_help=True)

ValidDays = Annotated[
    int,
    typer.Option(
        "--valid-days",
        min=1,
        max=3650,
        help="Days the authority's signature vouches for the public bundle; clients refuse it afterwards.",
    ),
]


def _dates(description: PublicDescription) -> dict[str, object]:
    return {"serial": description.serial, "expires_at": description.expires_at}


def _echo_dates(description: PublicDescription) -> None:
    typer.echo(f"serial       {description.serial}")
    typer.echo(f"expires_at   {description.expires_at} (renew with 'veilface keys extend' before then)")


def _deployment(directory: Path) -> tuple[PublicDescription, SigningKey]:
    """DIR's signed description and the signing key that signed it (refused if another key did)."""
    description, signature = read_public_description(directory)
    signing_key = read_signing_key(directory)
    try:
        description.verify(signature, signing_key.verify_key)
    except SignatureError:
        raise fail(f"{directory}/secret/signing.key did not sign {directory}/public; is this one deployment?") from None
    return description, signing_key


@keys_app.command("init")
def keys_init(
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="Where to write secret/, evaluation/, public/.")],
    preset: Preset[str] = DEFAULT_PRESET,
    model_id: ModelId[str] = DEFAULT_MODEL.model_id,
    dimension: Dimension[int] = DEFAULT_MODEL.dimension,
    valid_days: ValidDays = DEFAULT_VALID_DAYS,
    json_out: Json = False,
) -> None:
    """Generate CKKS keys and the authority's Ed25519 signing key; print the signing key's fingerprint.

    The public bundle's signed description carries serial 1 and an expiry --valid-days from now.
    """
    keyset = key_ceremony(preset, model_id=model_id, dimension=dimension, valid_days=valid_days)
    try:
        write_keyset(directory, keyset)
    except KeysExistError as exc:
        raise fail(f"{exc.message} (choose another DIR)") from None
    fingerprint = keyset.signing_key.verify_key.fingerprint
    if json_out:
        summary = {"key_id": keyset.key_id, "preset": preset, "model_id": model_id, "fingerprint": fingerprint}
        typer.echo(json.dumps(summary | _dates(keyset.description)))
    else:
        typer.echo(f"key_id       {keyset.key_id}")
        typer.echo(f"preset       {preset}")
        typer.echo(f"model_id     {model_id}")
        _echo_dates(keyset.description)
        typer.echo(f"authority signing key fingerprint: {fingerprint}")
        typer.echo(f"give clients {directory / 'public' / 'signing.pub'} (check the fingerprint out of band)")


@keys_app.command("rotate")
def keys_rotate(
    current: Annotated[Path, typer.Argument(metavar="CURRENT", help="The deployment's key directory.")],
    new: Annotated[Path, typer.Argument(metavar="NEW", help="Where to write the new secret/, evaluation/, public/.")],
    preset: Preset[str | None] = None,
    model_id: ModelId[str | None] = None,
    dimension: Dimension[int | None] = None,
    valid_days: ValidDays = DEFAULT_VALID_DAYS,
    json_out: Json = False,
) -> None:
    """New CKKS keys in NEW, signed with CURRENT's authority signing key, so clients keep their signing.pub.

    The preset, model id and dimension are CURRENT's unless given; the serial is CURRENT's plus one. Templates
    under the old key_id are refused with 'reenrolment-required' by a matcher on the new keys; README, "Key
    renewal", moves a deployment over without stopping it.
    """
    old, signing_key = _deployment(current)
    if not old.dated:
        # Clients that saw the new serial would refuse the old pair's undated bundle during the renewal.
        raise fail(
            f"{current}/public has no serial or expiry (made by an earlier veilface): run 'veilface keys extend "
            f"{current}' first and give its matcher the new public/meta.json, then rotate"
        )
    fresh = key_ceremony(
        preset or old.preset,
        model_id=model_id or old.model_id,
        dimension=dimension or old.dimension,
        serial=old.serial + 1,
        valid_days=valid_days,
    )
    # The ceremony's own Ed25519 key is discarded: the authority's identity outlives its CKKS keys.
    keyset = KeySet(
        fresh.secret,
        fresh.evaluation,
        fresh.public,
        signing_key,
        fresh.description,
        fresh.description.sign(signing_key),
    )
    try:
        write_keyset(new, keyset)
    except KeysExistError as exc:
        raise fail(f"{exc.message} (choose another NEW)") from None
    fingerprint = signing_key.verify_key.fingerprint
    if json_out:
        summary = {"old_key_id": old.key_id, "key_id": keyset.key_id, "fingerprint": fingerprint}
        typer.echo(json.dumps(summary | _dates(keyset.description)))
    else:
        typer.echo(f"old key_id   {old.key_id}")
        typer.echo(f"new key_id   {keyset.key_id}")
        _echo_dates(keyset.description)
        typer.echo(f"authority signing key fingerprint (unchanged): {fingerprint}")
        typer.echo("templates under the old key_id must be re-enrolled (README, 'Key renewal')")


@keys_app.command("extend")
def keys_extend(
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="The deployment's key directory.")],
    valid_days: ValidDays = DEFAULT_VALID_DAYS,
    json_out: Json = False,
) -> None:
    """Re-sign DIR's public bundle description to expire --valid-days from now: the same keys and serial.

    A bundle made before serials and expiries gets serial 1. Give the matcher the new DIR/public/meta.json
    and restart it; clients accept the new expiry at once, and the old one until it passes.
    """
    old, signing_key = _deployment(directory)
    extended = old.extended(valid_days)
    write_public_description(directory, extended, extended.sign(signing_key))
    if json_out:
        typer.echo(json.dumps({"key_id": extended.key_id, **_dates(extended), "previous_expires_at": old.expires_at}))
    else:
        typer.echo(f"key_id       {extended.key_id}")
        _echo_dates(extended)
        typer.echo(f"previously   {old.expires_at or 'no expiry'}")
        typer.echo(f"copy {directory / 'public' / 'meta.json'} to the matcher's keys/public/ and restart it")
