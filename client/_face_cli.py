"""``veilface embed`` and ``veilface calibrate``: the face pipeline on the command line.

Results go to standard output (with ``--json``, the JSON document alone); progress and errors go to
standard error. Exit codes: 0 success, 2 usage error, 3 when an image or the model failed.
"""

from __future__ import annotations

import json
import sys
import traceback
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from veilface.crypto import FaceError, VeilfaceError

from .calibration import CalibrationResult, calibrate, read_pairs
from .faces import Face, StagedFaceEmbedder, load_embedder, single_face

_FAILED = 3

_MODEL_HELP = (
    "insightface only: a model pack directory or a recognition .onnx file "
    "(default $VEILFACE_INSIGHTFACE_MODEL, then ~/.insightface/models/buffalo_l)."
)


class Backend(str, Enum):
    dlib = "dlib"
    insightface = "insightface"


def register(app: typer.Typer) -> None:
    """Add the ``embed`` and ``calibrate`` commands to the ``veilface`` app."""
    app.command("embed")(embed_command)
    app.command("calibrate")(calibrate_command)


def _progress() -> Console:
    return Console(stderr=True)


def _fail(ctx: typer.Context, exc: VeilfaceError) -> typer.Exit:
    """Print one ``Error: ...`` line (and the traceback with --verbose); return the Exit to raise."""
    if ctx.find_root().params.get("verbose"):
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    typer.echo(f"Error: {exc.message}", err=True)
    return typer.Exit(_FAILED)


def _embedder(ctx: typer.Context, backend: Backend, model: Path | None) -> StagedFaceEmbedder:
    if model is not None and backend is not Backend.insightface:
        raise typer.BadParameter("applies to --backend insightface only", param_hint="--model")
    try:
        with _progress().status(f"loading the {backend.value} face model"):
            return load_embedder(backend.value, model_path=model)
    except VeilfaceError as exc:
        raise _fail(ctx, exc) from None


def _face_json(face: Face) -> dict[str, Any]:
    return {"box": list(face.box), "score": face.score, "embedding": face.embedding.tolist()}


def embed_command(
    ctx: typer.Context,
    images: Annotated[list[Path], typer.Argument(metavar="IMAGE", help="Image files (JPEG, PNG, ...).")],
    backend: Annotated[Backend, typer.Option(help="Face model backend.")] = Backend.dlib,
    model: Annotated[Path | None, typer.Option("--model", metavar="PATH", help=_MODEL_HELP)] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print only a JSON document with the embeddings.")] = False,
    take_largest: Annotated[
        bool,
        typer.Option(
            "--take-largest",
            help="Keep only the largest face, as enrolment does (it must be at least 64 px across).",
        ),
    ] = False,
) -> None:
    """List the faces in each image (box, detector score), largest first; --json adds their embeddings."""
    embedder = _embedder(ctx, backend, model)
    console = _progress()
    results: list[dict[str, Any]] = []
    failed = 0
    for number, image in enumerate(images, start=1):
        try:
            with console.status(f"[{number}/{len(images)}] {image}"):
                if take_largest:
                    faces = [single_face(embedder, image, take_largest=True)]
                else:
                    faces = embedder.faces(image)
            if not faces:
                raise FaceError(f"no face found in {image}", faces=0)
        except VeilfaceError as exc:
            failed += 1
            typer.echo(f"Error: {exc.message}", err=True)
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
        raise typer.Exit(_FAILED)


def calibrate_command(
    ctx: typer.Context,
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
    backend: Annotated[Backend, typer.Option(help="Face model backend.")] = Backend.dlib,
    model: Annotated[Path | None, typer.Option("--model", metavar="PATH", help=_MODEL_HELP)] = None,
    take_largest: Annotated[
        bool, typer.Option("--take-largest", help="Use the largest face of images with several.")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print only a JSON document.")] = False,
) -> None:
    """Cosine threshold at a target false-match rate, EER and failures to acquire, from labelled pairs."""
    if not 0.0 <= target_fmr < 1.0:
        raise typer.BadParameter("must lie in [0, 1)", param_hint="--target-fmr")
    try:
        labelled = read_pairs(pairs, root)
    except VeilfaceError as exc:
        raise _fail(ctx, exc) from None
    embedder = _embedder(ctx, backend, model)
    console = _progress()
    try:
        with console.status("embedding") as status:
            result = calibrate(
                embedder,
                labelled,
                target_fmr,
                take_largest=take_largest,
                on_image=lambda done, total, path: status.update(f"[{done + 1}/{total}] {path}"),
            )
    except VeilfaceError as exc:
        raise _fail(ctx, exc) from None
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
