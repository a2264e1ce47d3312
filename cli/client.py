"""The client's commands: enroll, enroll-batch, verify, delete (against a matcher); embed, calibrate (offline).

Faces are embedded and encrypted on this machine; results go to standard output (with ``--json``, the JSON
document alone), progress and errors to standard error. Nothing here imports the server's packages.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from veilface.cli.errors import EXIT_FAILURE, EXIT_MATCH, EXIT_NO_MATCH, EXIT_USAGE, fail, print_error
from veilface.cli.options import (
    AuthorityKey,
    Backend,
    FaceBackend,
    Json,
    Model,
    Replace,
    Server,
    TakeLargest,
    Token,
    check_model,
)
from veilface.client.api import DEFAULT_SERVER, Client
from veilface.client.batch import BatchFileError, enroll_row, read_batch
from veilface.client.calibration import (
    DEFAULT_GALLERIES,
    DEFAULT_MAX_FNIR,
    DEFAULT_TARGET_FPIR,
    CalibrationResult,
    calibrate,
    calibrate_search,
    read_pairs,
)
from veilface.client.faces import Face, StagedFaceEmbedder, load_embedder, single_face
from veilface.crypto import FaceError, VeilfaceError

client_app = typer.Typer()
progress = Console(stderr=True)

Subject = Annotated[str, typer.Argument(help="Subject identifier, e.g. a SIM registration number.")]


@contextmanager
def _session(
    server: str,
    token: str,
    authority_key: Path | None,
    backend: FaceBackend = FaceBackend.dlib,
    model: Path | None = None,
    *,
    encrypts: bool = True,
) -> Iterator[Client]:
    """A client of the matcher at ``server``; without a token, or a trusted key to encrypt under, a usage error."""
    if encrypts:
        check_model(backend, model)
    if authority_key is None and encrypts:
        raise fail(
            "no authority key: pass --authority-key FILE (or set VEILFACE_AUTHORITY_KEY) with the authority's "
            "signing.pub; veilface refuses to encrypt a face under a key it cannot check",
            EXIT_USAGE,
        )
    if not token:
        raise fail("no operator token: pass --token or set VEILFACE_TOKEN", EXIT_USAGE)
    with Client(server, token=token, authority_key=authority_key, backend=backend.value, model_path=model) as client:
        yield client


@client_app.command("enroll")
def enroll(
    subject: Subject,
    image: Annotated[Path, typer.Argument(help="Reference photo (e.g. the identity document's photo).")],
    server: Server = DEFAULT_SERVER,
    token: Token = "",
    authority_key: AuthorityKey = None,
    replace: Replace = False,
    backend: Backend = FaceBackend.dlib,
    model: Model = None,
    take_largest: TakeLargest = False,
    json_out: Json = False,
) -> None:
    """Embed and encrypt the face in IMAGE here, and store only the ciphertext at the matcher."""
    with _session(server, token, authority_key, backend, model) as client:
        with progress.status("embedding and encrypting the face locally"):
            enrollment = client.enroll(subject, image, replace=replace, take_largest=take_largest)
    if json_out:
        typer.echo(json.dumps(asdict(enrollment)))
    else:
        typer.echo(f"enrolled {enrollment.subject_id} (key {enrollment.key_id}, model {enrollment.model_id})")


@client_app.command("enroll-batch")
def enroll_batch(
    listing: Annotated[Path, typer.Argument(metavar="CSV", help="Rows of subject_id,image (a header line first).")],
    server: Server = DEFAULT_SERVER,
    token: Token = "",
    authority_key: AuthorityKey = None,
    replace: Replace = False,
    backend: Backend = FaceBackend.dlib,
    model: Model = None,
    take_largest: TakeLargest = False,
    json_out: Json = False,
) -> None:
    """Enrol every row of CSV, each face embedded and encrypted here.

    A row that fails (no face, an existing subject, ...) is reported and the others go on; exit 0 if every
    row was enrolled, 3 otherwise.
    """
    try:
        rows = read_batch(listing)
    except BatchFileError as exc:
        raise fail(exc.message, EXIT_USAGE) from None
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with _session(server, token, authority_key, backend, model) as client:
        with Progress(*columns, console=progress, transient=True) as bar:
            task = bar.add_task("enrolling", total=len(rows))
            results = []
            for number, row in enumerate(rows):
                first = " (loading the face model first)" if number == 0 else ""
                bar.update(task, description=f"enrolling {row.subject_id}{first}")
                results.append(enroll_row(client, row, replace=replace, take_largest=take_largest))
                bar.advance(task)
    failed = [result for result in results if not result.enrolled]
    if json_out:
        typer.echo(json.dumps([result.to_dict() for result in results]))
    else:
        for result in failed:
            typer.echo(f"{result.row.subject_id}: not enrolled: {result.error}", err=True)
        typer.echo(f"enrolled {len(results) - len(failed)} of {len(results)}")
    if failed:
        raise typer.Exit(EXIT_FAILURE)


@client_app.command("verify")
def verify(
    subject: Subject,
    image: Annotated[Path, typer.Argument(help="Live photo to check against the enrolled template.")],
    server: Server = DEFAULT_SERVER,
    token: Token = "",
    authority_key: AuthorityKey = None,
    backend: Backend = FaceBackend.dlib,
    model: Model = None,
    take_largest: TakeLargest = False,
    json_out: Json = False,
) -> None:
    """Check IMAGE against SUBJECT. Exit 0 on match, 1 on no match, 4 if the probe is refused, 3 on errors."""
    with _session(server, token, authority_key, backend, model) as client:
        with progress.status("embedding and encrypting the face locally"):
            record = client.verify(subject, image, take_largest=take_largest)
    if json_out:
        typer.echo(json.dumps(record.to_dict()))
    else:
        decision = "match" if record.match else "no match"
        typer.echo(f"{subject}: {decision} (signed by the authority, {record.issued_at})")
    raise typer.Exit(EXIT_MATCH if record.match else EXIT_NO_MATCH)


@client_app.command("delete")
def delete(
    subject: Subject,
    server: Server = DEFAULT_SERVER,
    token: Token = "",
    authority_key: AuthorityKey = None,
) -> None:
    """Erase SUBJECT's template (admin scope); nothing else identifies the face."""
    with _session(server, token, authority_key, encrypts=False) as client:
        client.delete(subject)
    typer.echo(f"deleted {subject}")


def _embedder(backend: FaceBackend, model: Path | None) -> StagedFaceEmbedder:
    check_model(backend, model)
    with progress.status(f"loading the {backend.value} face model"):
        return load_embedder(backend.value, model_path=model)


def _face_json(face: Face) -> dict[str, Any]:
    return {"box": list(face.box), "score": face.score, "embedding": face.embedding.tolist()}


@client_app.command("embed")
def embed(
    images: Annotated[list[Path], typer.Argument(metavar="IMAGE", help="Image files (JPEG, PNG, ...).")],
    backend: Backend = FaceBackend.dlib,
    model: Model = None,
    json_out: Json = False,
    take_largest: TakeLargest = False,
) -> None:
    """List the faces in each image (box, detector score), largest first; --json adds their embeddings."""
    embedder = _embedder(backend, model)
    results: list[dict[str, Any]] = []
    failed = 0
    for number, image in enumerate(images, start=1):
        try:
            with progress.status(f"[{number}/{len(images)}] {image}"):
                if take_largest:
                    faces = [single_face(embedder, image, take_largest=True)]
                else:
                    faces = embedder.faces(image)
            if not faces:
                raise FaceError(f"no face found in {image}", faces=0)
        except VeilfaceError as exc:
            failed += 1
            print_error(exc.message)
            results.append({"path": str(image), "error": exc.message})
            continue
        results.append({"path": str(image), "faces": [_face_json(face) for face in faces]})
        if not json_out:
            typer.echo(f"{image}: {len(faces)} face{'s' if len(faces) > 1 else ''}")
            for index, face in enumerate(faces, start=1):
                box = ",".join(str(value) for value in face.box)
                typer.echo(f"  {index}  box {box}  {face.size} px  score {face.score:.3f}")
    if json_out:
        document = {"model_id": embedder.model_id, "dimension": embedder.dimension, "images": results}
        typer.echo(json.dumps(document))
    else:
        typer.echo(f"model {embedder.model_id} ({embedder.dimension}-D)", err=True)
    if failed:
        raise typer.Exit(EXIT_FAILURE)


@client_app.command("calibrate")
def calibrate_command(
    pairs: Annotated[
        Path,
        typer.Argument(
            metavar="PAIRS",
            exists=True,
            dir_okay=False,
            help="Labelled pairs: a CSV image_a,image_b,same or an LFW pairs.txt.",
        ),
    ],
    root: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            file_okay=False,
            help="Folder the image paths are relative to (default: the pairs file's folder).",
        ),
    ] = None,
    target_fmr: Annotated[float, typer.Option(help="False-match rate the threshold must not exceed.")] = 1e-3,
    backend: Backend = FaceBackend.dlib,
    model: Model = None,
    take_largest: TakeLargest = False,
    json_out: Json = False,
    search: Annotated[
        bool, typer.Option("--search", help="Calibrate the 1:N search threshold for FPIR at --gallery sizes.")
    ] = False,
    gallery: Annotated[
        list[int] | None,
        typer.Option("--gallery", metavar="N", min=1, help="Gallery size, repeatable (default 1e3 to 1e6)."),
    ] = None,
    target_fpir: Annotated[
        float, typer.Option(help="False-positive identification rate the search threshold must not exceed.")
    ] = DEFAULT_TARGET_FPIR,
    max_fnir: Annotated[float, typer.Option(help="FNIR bound for the largest usable gallery.")] = DEFAULT_MAX_FNIR,
) -> None:
    """Cosine threshold at a target false-match rate, EER and failures to acquire, from labelled pairs.

    With --search: the 1:N threshold per gallery size at a target FPIR, FNIR, and the largest gallery the model
    serves (tail of the impostor scores extrapolated, stated as such in the output).
    """
    if not 0.0 <= target_fmr < 1.0:
        raise typer.BadParameter("must lie in [0, 1)", param_hint="--target-fmr")
    labelled = read_pairs(pairs, root)
    embedder = _embedder(backend, model)
    if search:
        with progress.status("embedding") as status:
            searched = calibrate_search(
                embedder,
                labelled,
                tuple(gallery or DEFAULT_GALLERIES),
                target_fpir,
                max_fnir=max_fnir,
                take_largest=take_largest,
                on_image=lambda done, total, path: status.update(f"[{done + 1}/{total}] {path}"),
            )
        typer.echo(searched.to_json() if json_out else searched.to_markdown())
        return
    with progress.status("embedding") as status:
        result = calibrate(
            embedder,
            labelled,
            target_fmr,
            take_largest=take_largest,
            on_image=lambda done, total, path: status.update(f"[{done + 1}/{total}] {path}"),
        )
    for failure in result.failures:
        typer.echo(f"failure to acquire: {failure.image}: {failure.reason}", err=True)
    if json_out:
        typer.echo(json.dumps(result.to_dict()))
    else:
        _print_calibration(result)


def _print_calibration(result: CalibrationResult) -> None:
    pairs = result.genuine_pairs + result.impostor_pairs
    lines = [
        ("model", result.model_id),
        (
            "pairs",
            f"{pairs} scored ({result.genuine_pairs} genuine, {result.impostor_pairs} impostor), "
            f"{result.skipped_pairs} skipped",
        ),
        ("images", f"{result.images}, {len(result.failures)} failures to acquire"),
        ("EER", f"{result.eer:.2%}"),
        (
            f"threshold at FMR <= {result.target_fmr:g}",
            f"{result.threshold:.4f}  (FMR {result.fmr:.2%}, FNMR {result.fnmr:.2%})",
        ),
        (
            "default threshold",
            f"{result.default_threshold:.4f}  (FMR {result.default_fmr:.2%}, FNMR {result.default_fnmr:.2%})",
        ),
    ]
    width = max(len(label) for label, _ in lines)
    for label, value in lines:
        typer.echo(f"{label:<{width}}  {value}")
    if result.target_fmr < result.fmr_resolution:
        typer.echo(
            f"note: {result.impostor_pairs} impostor pairs cannot measure an FMR below "
            f"{result.fmr_resolution:.2%}; the threshold is the highest impostor score."
        )
