"""``veilface bench ...``: every benchmark is reachable from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

bench_app = typer.Typer(help="Benchmarks anyone can rerun (results as JSON + a markdown table).", no_args_is_help=True)


@bench_app.command("crypto")
def crypto(
    runs: Annotated[int, typer.Option(help="Timed rounds per preset.")] = 100,
    pairs: Annotated[int, typer.Option(help="Random 512-D pairs for the max score error.")] = 1000,
    preset: Annotated[list[str] | None, typer.Option(help="Preset(s) to run; default all.")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write results as JSON here.")] = None,
) -> None:
    """CKKS core per preset: encrypt, compare, decide, sizes, max error; TenSEAL .dot as the baseline."""
    from veilface.bench import crypto as bench_crypto

    argv = ["--runs", str(runs), "--pairs", str(pairs)]
    for name in preset or []:
        argv += ["--preset", name]
    if json_path:
        argv += ["--json", str(json_path)]
    raise typer.Exit(bench_crypto.main(argv))


@bench_app.command("faces")
def faces(
    runs: Annotated[int, typer.Option(help="Timed runs per image.")] = 10,
    backend: Annotated[list[str] | None, typer.Option(help="Backend(s) to time; default all available.")] = None,
    model: Annotated[Path | None, typer.Option(help="insightface pack directory or .onnx file.")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write results as JSON here.")] = None,
) -> None:
    """Face pipeline per stage (decode, detect, landmarks, embed) per backend, on shipped photos."""
    from veilface.bench import faces as bench_faces

    argv = ["--runs", str(runs)]
    for name in backend or []:
        argv += ["--backend", name]
    if model:
        argv += ["--model", str(model)]
    if json_path:
        argv += ["--json", str(json_path)]
    raise typer.Exit(bench_faces.main(argv))


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")
