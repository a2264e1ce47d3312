"""``veilface keys init | rotate``: the key ceremony and key renewal, run at the authority (secret keys)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from veilface.cli.errors import fail
from veilface.cli.options import Dimension, Json, ModelId, Preset
from veilface.crypto import DEFAULT_PRESET, KeySet, SignatureError, key_ceremony
from veilface.protocol.face_models import DEFAULT_MODEL
from veilface.server.keystore import KeysExistError, read_public_description, read_signing_key, write_keyset

keys_app = typer.Typer(help="Key ceremony and key management (run at the authority).", no_args_is_help=True)


@keys_app.command("init")
def keys_init(
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="Where to write secret/, evaluation/, public/.")],
    preset: Preset[str] = DEFAULT_PRESET,
    model_id: ModelId[str] = DEFAULT_MODEL.model_id,
    dimension: Dimension[int] = DEFAULT_MODEL.dimension,
    json_out: Json = False,
) -> None:
    """Generate CKKS keys and the authority's Ed25519 signing key; print the signing key's fingerprint."""
    keyset = key_ceremony(preset, model_id=model_id, dimension=dimension)
    try:
        write_keyset(directory, keyset)
    except KeysExistError as exc:
        raise fail(f"{exc.message} (choose another DIR)") from None
    fingerprint = keyset.signing_key.verify_key.fingerprint
    if json_out:
        typer.echo(
            json.dumps({"key_id": keyset.key_id, "preset": preset, "model_id": model_id, "fingerprint": fingerprint})
        )
    else:
        typer.echo(f"key_id       {keyset.key_id}")
        typer.echo(f"preset       {preset}")
        typer.echo(f"model_id     {model_id}")
        typer.echo(f"authority signing key fingerprint: {fingerprint}")
        typer.echo(f"give clients {directory / 'public' / 'signing.pub'} (check the fingerprint out of band)")


@keys_app.command("rotate")
def keys_rotate(
    current: Annotated[Path, typer.Argument(metavar="CURRENT", help="The deployment's key directory.")],
    new: Annotated[Path, typer.Argument(metavar="NEW", help="Where to write the new secret/, evaluation/, public/.")],
    preset: Preset[str | None] = None,
    model_id: ModelId[str | None] = None,
    dimension: Dimension[int | None] = None,
    json_out: Json = False,
) -> None:
    """New CKKS keys in NEW, signed with CURRENT's authority signing key, so clients keep their signing.pub.

    The preset, model id and dimension are CURRENT's unless given. Templates under the old key_id are
    refused with 'reenrolment-required' by a matcher on the new keys; README, "Key renewal", moves a
    deployment over without stopping it.
    """
    old, signature = read_public_description(current)
    signing_key = read_signing_key(current)
    try:
        old.verify(signature, signing_key.verify_key)
    except SignatureError:
        raise fail(f"{current}/secret/signing.key did not sign {current}/public; is this one deployment?") from None
    fresh = key_ceremony(preset or old.preset, model_id=model_id or old.model_id, dimension=dimension or old.dimension)
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
        typer.echo(json.dumps({"old_key_id": old.key_id, "key_id": keyset.key_id, "fingerprint": fingerprint}))
    else:
        typer.echo(f"old key_id   {old.key_id}")
        typer.echo(f"new key_id   {keyset.key_id}")
        typer.echo(f"authority signing key fingerprint (unchanged): {fingerprint}")
        typer.echo("templates under the old key_id must be re-enrolled (README, 'Key renewal')")
