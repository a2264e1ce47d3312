"""The ``veilface`` command line: one Typer app; each part of veilface registers its commands here."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from veilface.crypto import DEFAULT_PRESET, PRESETS, ConfigurationError, VeilfaceError, key_ceremony

app = typer.Typer(
    name="veilface",
    help="Privacy-preserving face verification: encrypted templates, one signed bit per decision.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
keys_app = typer.Typer(help="Key ceremony and key management (run at the authority).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

DEFAULT_MODEL_ID = "dlib-resnet-v1-128"
DEFAULT_DIMENSION = 128

state = {"verbose": False}


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show details and tracebacks.")] = False,
) -> None:
    state["verbose"] = verbose
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def fail(message: str, code: int = 3) -> typer.Exit:
    """Print one 'Error: ...' line to standard error and return the Exit to raise."""
    typer.echo(f"Error: {message}", err=True)
    return typer.Exit(code)


@keys_app.command("init")
def keys_init(
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="Where to write secret/, evaluation/, public/.")],
    preset: Annotated[str, typer.Option(help=f"CKKS parameter preset ({', '.join(PRESETS)}).")] = DEFAULT_PRESET,
    model_id: Annotated[str, typer.Option(help="Embedding model this deployment uses.")] = DEFAULT_MODEL_ID,
    dimension: Annotated[int, typer.Option(help="Embedding dimension of that model.")] = DEFAULT_DIMENSION,
    json_out: Annotated[bool, typer.Option("--json", help="Print key_id and fingerprint as JSON.")] = False,
) -> None:
    """Generate CKKS keys and the authority's Ed25519 signing key; print the signing key's fingerprint."""
    from veilface.server.keystore import KeysExistError, write_keyset

    try:
        keyset = key_ceremony(preset, model_id=model_id, dimension=dimension)
        write_keyset(directory, keyset)
    except KeysExistError as exc:
        raise fail(f"{exc.message} (choose another DIR)") from None
    except VeilfaceError as exc:
        raise fail(exc.message) from None
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
    preset: Annotated[str | None, typer.Option(help="CKKS parameter preset (default: CURRENT's).")] = None,
    model_id: Annotated[str | None, typer.Option(help="Embedding model (default: CURRENT's).")] = None,
    dimension: Annotated[int | None, typer.Option(help="Embedding dimension (default: CURRENT's).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print both key_ids and the fingerprint as JSON.")] = False,
) -> None:
    """New CKKS keys in NEW, signed with CURRENT's authority signing key, so clients keep their signing.pub.

    Templates under the old key_id are refused with 'reenrolment-required' by a matcher on the new keys;
    README, "Key renewal", moves a deployment over without stopping it.
    """
    from veilface.crypto import KeySet, SignatureError
    from veilface.server.keystore import KeysExistError, read_public_description, read_signing_key, write_keyset

    try:
        old, signature = read_public_description(current)
        signing_key = read_signing_key(current)
        try:
            old.verify(signature, signing_key.verify_key)
        except SignatureError:
            raise fail(f"{current}/secret/signing.key did not sign {current}/public; is this one deployment?") from None
        fresh = key_ceremony(
            preset or old.preset, model_id=model_id or old.model_id, dimension=dimension or old.dimension
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
        write_keyset(new, keyset)
    except KeysExistError as exc:
        raise fail(f"{exc.message} (choose another NEW)") from None
    except VeilfaceError as exc:
        raise fail(exc.message) from None
    fingerprint = signing_key.verify_key.fingerprint
    if json_out:
        typer.echo(json.dumps({"old_key_id": old.key_id, "key_id": keyset.key_id, "fingerprint": fingerprint}))
    else:
        typer.echo(f"old key_id   {old.key_id}")
        typer.echo(f"new key_id   {keyset.key_id}")
        typer.echo(f"authority signing key fingerprint (unchanged): {fingerprint}")
        typer.echo("templates under the old key_id must be re-enrolled (README, 'Key renewal')")


from veilface.client import _face_cli  # noqa: E402

_face_cli.register(app)

from veilface.client import _ops_cli  # noqa: E402

_ops_cli.register(app)

from veilface.cli.bench import bench_app  # noqa: E402

app.add_typer(bench_app, name="bench")


from veilface.server import _cli as _server_cli  # noqa: E402

_server_cli.register(app)

from veilface.server import _audit_cli  # noqa: E402

_audit_cli.register(app)


def main() -> None:
    try:
        app()
    except ConfigurationError as exc:
        typer.echo(f"Error: {exc.message}", err=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
