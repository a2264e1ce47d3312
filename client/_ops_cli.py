"""``veilface enroll | verify | delete | demo``: the operator's commands, built on the Python client API."""

from __future__ import annotations

import csv
import json
import logging
import secrets
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from veilface.client.api import DEFAULT_SERVER, Client, ProbeRefusedError
from veilface.client.samples import DemoCase
from veilface.crypto import (
    DecisionRecord,
    FaceError,
    ImageError,
    InvalidEmbeddingError,
    ServiceError,
    VeilfaceError,
)

log = logging.getLogger("veilface.client")

EXIT_MATCH, EXIT_NO_MATCH, EXIT_FAILURE, EXIT_PROBE_REFUSED = 0, 1, 3, 4

ServerOption = Annotated[str, typer.Option("--server", envvar="VEILFACE_SERVER", help="Matcher URL.")]
TokenOption = Annotated[
    str, typer.Option("--token", envvar="VEILFACE_TOKEN", help="Operator bearer token.", show_default=False)
]
AuthorityKeyOption = Annotated[
    Path | None,
    typer.Option(
        "--authority-key",
        envvar="VEILFACE_AUTHORITY_KEY",
        help="The authority's signing.pub, obtained out of band; without it nothing is encrypted.",
    ),
]
BackendOption = Annotated[str, typer.Option(help="Face backend: dlib or insightface.")]
ModelOption = Annotated[Path | None, typer.Option("--model", help="insightface pack directory or .onnx file.")]
LargestOption = Annotated[bool, typer.Option("--take-largest", help="Use the largest face if there are several.")]

stderr = Console(stderr=True)


def _error(message: str, code: int) -> typer.Exit:
    typer.echo(f"Error: {message}", err=True)
    return typer.Exit(code)


@contextmanager
def _client(
    server: str,
    token: str,
    authority_key: Path | None,
    backend: str = "dlib",
    model: Path | None = None,
    *,
    encrypts: bool = True,
) -> Iterator[Client]:
    if authority_key is None and encrypts:
        raise _error(
            "no authority key: pass --authority-key FILE (or set VEILFACE_AUTHORITY_KEY) with the authority's "
            "signing.pub; veilface refuses to encrypt a face under a key it cannot check",
            2,
        )
    if not token:
        raise _error("no operator token: pass --token or set VEILFACE_TOKEN", 2)
    try:
        with Client(server, token=token, authority_key=authority_key, backend=backend, model_path=model) as client:
            yield client
    except ProbeRefusedError as exc:
        raise _error(f"{exc.message} (the probe was not a normalised embedding)", EXIT_PROBE_REFUSED) from None
    except VeilfaceError as exc:
        log.debug("request failed", exc_info=True)
        raise _error(exc.message, EXIT_FAILURE) from None


def enroll(
    subject: Annotated[str, typer.Argument(help="Subject identifier, e.g. a SIM registration number.")],
    image: Annotated[Path, typer.Argument(help="Reference photo (e.g. the identity document's photo).")],
    server: ServerOption = DEFAULT_SERVER,
    token: TokenOption = "",
    authority_key: AuthorityKeyOption = None,
    replace: Annotated[bool, typer.Option("--replace", help="Replace an existing template (admin scope).")] = False,
    backend: BackendOption = "dlib",
    model: ModelOption = None,
    take_largest: LargestOption = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the enrolment as JSON.")] = False,
) -> None:
    """Embed and encrypt the face in IMAGE here, and store only the ciphertext at the matcher."""
    with _client(server, token, authority_key, backend, model) as client:
        with stderr.status("embedding and encrypting the face locally"):
            enrollment = client.enroll(subject, image, replace=replace, take_largest=take_largest)
    if json_out:
        typer.echo(json.dumps(enrollment.__dict__))
    else:
        typer.echo(f"enrolled {enrollment.subject_id} (key {enrollment.key_id}, model {enrollment.model_id})")


BATCH_COLUMNS = ("subject_id", "image")
# Answers about one row (subject exists, template refused or too large); any other stops the batch.
ROW_STATUSES = frozenset({409, 413, 422})


def _batch_rows(listing: Path) -> list[tuple[str, Path]]:
    """``subject_id,image`` rows (header first); image paths relative to the listing's directory."""
    try:
        with listing.open(newline="", encoding="utf-8") as stream:
            reader = csv.DictReader(stream)
            header = {name.strip() for name in reader.fieldnames or ()}
            if not set(BATCH_COLUMNS) <= header:
                raise _error(f"{listing} must be a CSV file whose header has the columns subject_id,image", 2)
            rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise _error(f"cannot read {listing}: {exc}", 2) from None
    out = []
    for number, row in enumerate(rows, start=2):
        subject, image = row.get("subject_id", ""), row.get("image", "")
        if not subject or not image:
            raise _error(f"{listing}, line {number}: subject_id and image must both be given", 2)
        out.append((subject, listing.parent / image))
    return out


def enroll_batch(
    listing: Annotated[Path, typer.Argument(metavar="CSV", help="Rows of subject_id,image (a header line first).")],
    server: ServerOption = DEFAULT_SERVER,
    token: TokenOption = "",
    authority_key: AuthorityKeyOption = None,
    replace: Annotated[bool, typer.Option("--replace", help="Replace existing templates (admin scope).")] = False,
    backend: BackendOption = "dlib",
    model: ModelOption = None,
    take_largest: LargestOption = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print one result per row as JSON.")] = False,
) -> None:
    """Enrol every row of CSV, each face embedded and encrypted here. A row that fails (no face, an existing
    subject, ...) is reported and the others go on; exit 0 if every row was enrolled, 3 otherwise."""
    rows = _batch_rows(listing)
    results: list[dict[str, str | bool]] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with _client(server, token, authority_key, backend, model) as client:
        with Progress(*columns, console=stderr, transient=True) as progress:
            task = progress.add_task("enrolling", total=len(rows))
            for number, (subject, image) in enumerate(rows):
                first = " (loading the face model first)" if number == 0 else ""
                progress.update(task, description=f"enrolling {subject}{first}")
                result: dict[str, str | bool] = {"subject_id": subject, "image": str(image)}
                try:
                    enrollment = client.enroll(subject, image, replace=replace, take_largest=take_largest)
                except (ImageError, FaceError, InvalidEmbeddingError) as exc:
                    result.update(enrolled=False, error=exc.message)
                except ServiceError as exc:
                    if exc.status not in ROW_STATUSES:
                        raise  # the matcher, the token or the trust is at fault, not this row: stop
                    result.update(enrolled=False, error=exc.message)
                else:
                    result.update(enrolled=True, **enrollment.__dict__)
                results.append(result)
                progress.advance(task)
    failed = [r for r in results if not r["enrolled"]]
    if json_out:
        typer.echo(json.dumps(results))
    else:
        for r in failed:
            typer.echo(f"{r['subject_id']}: not enrolled: {r['error']}", err=True)
        typer.echo(f"enrolled {len(results) - len(failed)} of {len(results)}")
    if failed:
        raise typer.Exit(EXIT_FAILURE)


def verify(
    subject: Annotated[str, typer.Argument(help="Subject identifier.")],
    image: Annotated[Path, typer.Argument(help="Live photo to check against the enrolled template.")],
    server: ServerOption = DEFAULT_SERVER,
    token: TokenOption = "",
    authority_key: AuthorityKeyOption = None,
    backend: BackendOption = "dlib",
    model: ModelOption = None,
    take_largest: LargestOption = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the signed decision record alone.")] = False,
) -> None:
    """Check IMAGE against SUBJECT. Exit 0 on match, 1 on no match, 4 if the probe is refused, 3 on errors."""
    with _client(server, token, authority_key, backend, model) as client:
        with stderr.status("embedding and encrypting the face locally"):
            record = client.verify(subject, image, take_largest=take_largest)
    if json_out:
        typer.echo(json.dumps(record.to_dict()))
    else:
        decision = "match" if record.match else "no match"
        typer.echo(f"{subject}: {decision} (signed by the authority, {record.issued_at})")
    raise typer.Exit(EXIT_MATCH if record.match else EXIT_NO_MATCH)


def delete(
    subject: Annotated[str, typer.Argument(help="Subject identifier.")],
    server: ServerOption = DEFAULT_SERVER,
    token: TokenOption = "",
    authority_key: AuthorityKeyOption = None,
) -> None:
    """Erase SUBJECT's template (admin scope); nothing else identifies the face."""
    with _client(server, token, authority_key, encrypts=False) as client:
        client.delete(subject)
    typer.echo(f"deleted {subject}")


def demo(
    keep: Annotated[Path | None, typer.Option(help="Keep keys and data here (default: a temporary directory).")] = None,
) -> None:
    """Start an authority and a matcher on loopback with fresh keys, enrol and verify shipped photos."""
    from veilface.client.samples import demo_cases
    from veilface.crypto import DEFAULT_PRESET, key_ceremony
    from veilface.server.keystore import write_keyset
    from veilface.server.launch import start_services

    with tempfile.TemporaryDirectory(prefix="veilface-demo-") as scratch:
        root = keep or Path(scratch)
        keys_dir, data_dir = root / "keys", root / "data"
        token = secrets.token_urlsafe(24)
        try:
            with stderr.status("key ceremony"):
                write_keyset(keys_dir, key_ceremony(DEFAULT_PRESET, model_id="dlib-resnet-v1-128", dimension=128))
            with stderr.status("loading sample photos"):
                cases = demo_cases()
            with stderr.status("starting authority and matcher on loopback"):
                services = start_services(keys_dir, data_dir, operator_token=token)
            with services:
                stderr.print(f"matcher {services.matcher_url}, authority {services.authority_url}")
                authority_key = keys_dir / "public" / "signing.pub"
                rows, failures = _run_demo_cases(services.matcher_url, token, authority_key, cases)
        except VeilfaceError as exc:
            raise _error(exc.message, EXIT_FAILURE) from None
    table = Table(title="veilface demo: encrypted verification, one signed bit per decision")
    for column in ("case", "expected", "decision", "time"):
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    Console().print(table)
    if failures:
        raise _error(f"{failures} decision(s) differ from the expected ones", EXIT_FAILURE)
    typer.echo("all decisions as expected")


def _run_demo_cases(
    server: str, token: str, authority_key: Path, cases: list[DemoCase]
) -> tuple[list[tuple[str, str, str, str]], int]:
    rows: list[tuple[str, str, str, str]] = []
    failures = 0
    with Client(server, token=token, authority_key=authority_key) as client:
        with stderr.status("loading the face model"):
            client.embed(cases[0].enrol_image)  # load it before timing
        for number, case in enumerate(cases, start=1):
            subject = f"demo-subject-{number}"
            client.enroll(subject, case.enrol_image)
            start = time.perf_counter()
            record: DecisionRecord = client.verify(subject, case.probe_image)
            elapsed = time.perf_counter() - start
            expected = "match" if case.expected_match else "no match"
            decision = "match" if record.match else "no match"
            failures += decision != expected
            rows.append((case.name, expected, decision, f"{elapsed * 1000:.0f} ms"))
            client.delete(subject)
    return rows, failures


def register(app: typer.Typer) -> None:
    app.command()(enroll)
    app.command("enroll-batch")(enroll_batch)
    app.command()(verify)
    app.command()(delete)
    app.command()(demo)
