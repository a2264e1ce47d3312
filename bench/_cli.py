"""``veilface bench ...``: every benchmark is reachable from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from veilface.crypto import DEFAULT_PRESET

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


Backend = Annotated[str, typer.Option(help="Face backend: dlib or insightface.")]
Model = Annotated[Path | None, typer.Option(help="insightface pack directory or .onnx file.")]
Preset = Annotated[str, typer.Option(help="CKKS parameter preset.")]
JsonPath = Annotated[Path | None, typer.Option("--json", help="Write results as JSON here.")]
PlotPath = Annotated[Path | None, typer.Option("--plot", help="Write a PNG chart here.")]


def _outputs(json_path: Path | None, plot_path: Path | None) -> list[str]:
    argv = ["--json", str(json_path)] if json_path else []
    return argv + (["--plot", str(plot_path)] if plot_path else [])


@bench_app.command("latency")
def latency(
    backend: Backend = "dlib",
    model: Model = None,
    preset: Preset = DEFAULT_PRESET,
    runs: Annotated[int, typer.Option(help="Timed rounds (each runs both pipelines).")] = 50,
    image: Annotated[Path | None, typer.Option(help="A photo with one face; default ships with insightface.")] = None,
    json_path: JsonPath = None,
    plot_path: PlotPath = None,
) -> None:
    """End-to-end verification per stage, encrypted beside the plaintext stand-in, TenSEAL .dot as baseline."""
    from veilface.bench import latency as bench_latency

    argv = ["--backend", backend, "--preset", preset, "--runs", str(runs)]
    argv += ["--model", str(model)] if model else []
    argv += ["--image", str(image)] if image else []
    raise typer.Exit(bench_latency.main(argv + _outputs(json_path, plot_path)))


@bench_app.command("accuracy")
def accuracy(
    pairs: Annotated[Path, typer.Argument(help="Pairs CSV (image_a,image_b,same) or LFW pairs.txt.")],
    root: Annotated[Path | None, typer.Option(help="Image folder (default: the pairs file's folder).")] = None,
    backend: Backend = "dlib",
    model: Model = None,
    preset: Preset = DEFAULT_PRESET,
    threshold: Annotated[float | None, typer.Option(help="Cosine threshold (default: the backend's).")] = None,
    json_path: JsonPath = None,
    plot_path: PlotPath = None,
) -> None:
    """FMR, FNMR, EER and DET of the plaintext and encrypted pipelines on the same pairs; their agreement."""
    from veilface.bench import accuracy as bench_accuracy

    argv = [str(pairs), "--backend", backend, "--preset", preset]
    argv += ["--root", str(root)] if root else []
    argv += ["--model", str(model)] if model else []
    argv += ["--threshold", repr(threshold)] if threshold is not None else []
    raise typer.Exit(bench_accuracy.main(argv + _outputs(json_path, plot_path)))


@bench_app.command("load")
def load(
    clients: Annotated[int, typer.Option(min=1, help="Concurrent clients.")] = 4,
    seconds: Annotated[float, typer.Option(min=0.1, help="Measured seconds per deployment.")] = 20.0,
    workers: Annotated[int, typer.Option(min=1, help="Matcher worker processes.")] = 2,
    json_path: JsonPath = None,
    plot_path: PlotPath = None,
) -> None:
    """Concurrent verifications against real matcher workers, encrypted then the stand-in: throughput, p99."""
    from veilface.bench import load as bench_load

    argv = ["--clients", str(clients), "--seconds", repr(seconds), "--workers", str(workers)]
    raise typer.Exit(bench_load.main(argv + _outputs(json_path, plot_path)))


# -- reliability (issue 8): fuzzing, crash safety, outages, restarts ------------------------------------

Enrolments = Annotated[int, typer.Option(min=1, help="Acknowledged enrolments in the crash test.")]
Kills = Annotated[int, typer.Option(min=1, help="SIGKILLs of the matcher's process group.")]
Clients = Annotated[int, typer.Option(min=1, help="Concurrent clients.")]
CrashDatabase = Annotated[str, typer.Option(help="The matcher's database: sqlite, or postgresql (a private cluster).")]


@bench_app.command("reliability")
def reliability(
    parser_examples: Annotated[int, typer.Option(min=1, help="hypothesis examples per parser.")] = 5000,
    http_examples: Annotated[int, typer.Option(min=1, help="schemathesis examples per operation and kind.")] = 1000,
    enrolments: Enrolments = 1000,
    rounds: Kills = 5,
    clients: Clients = 8,
    load_clients: Annotated[int, typer.Option(min=1, help="Concurrent clients in the steady load.")] = 50,
    load_seconds: Annotated[float, typer.Option(min=1, help="Seconds of steady load after warm-up.")] = 60.0,
    json_path: JsonPath = None,
) -> None:
    """Fuzzing, crash safety, outages, SIGTERM restarts, memory under load; exit 1 if any falls short."""
    from veilface.bench import reliability as bench_reliability

    argv = ["--parser-examples", str(parser_examples), "--http-examples", str(http_examples)]
    argv += ["--enrolments", str(enrolments), "--rounds", str(rounds), "--clients", str(clients)]
    argv += ["--load-clients", str(load_clients), "--load-seconds", repr(load_seconds)]
    raise typer.Exit(bench_reliability.main(argv + _outputs(json_path, None)))


@bench_app.command("crash")
def crash(
    enrolments: Enrolments = 1000,
    rounds: Kills = 5,
    clients: Clients = 8,
    database: CrashDatabase = "sqlite",
    json_path: JsonPath = None,
) -> None:
    """Enrolments in flight while the matcher is SIGKILLed: every acknowledged one present and verifying."""
    from veilface.bench import reliability as bench_reliability

    argv = ["--crash-only", "--enrolments", str(enrolments), "--rounds", str(rounds), "--clients", str(clients)]
    argv += ["--database", database]
    raise typer.Exit(bench_reliability.main(argv + _outputs(json_path, None)))


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")
