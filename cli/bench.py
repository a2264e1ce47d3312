"""``veilface bench ...``: every benchmark, run as a function of ``veilface.bench``, its report written here.

Options shared with other commands are in ``veilface.cli.options``; the benchmarks' own are below. Every
command writes the JSON (``--json``), the chart (``--plot``) and the markdown table through ``emit``, shows
progress on standard error (standard output holds only the table), and reports an error the benchmarks raise
on purpose as one "Error: ..." line with its exit code (``veilface.cli.errors.reported``).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from veilface.cli.errors import reported
from veilface.cli.options import (
    Backend,
    Backends,
    FaceBackend,
    JsonPath,
    KnownPreset,
    Model,
    PlotPath,
    Presets,
    choice,
)
from veilface.crypto import DEFAULT_PRESET

bench_app = typer.Typer(help="Benchmarks anyone can rerun (results as JSON + a markdown table).", no_args_is_help=True)

Report = dict[str, Any]

# -- the benchmarks' own options ------------------------------------------------------------------------

DATABASES = ("sqlite", "postgresql")

Runs = Annotated[
    int, typer.Option(min=1, help="Timed rounds: per preset (crypto), per image (faces), of both pipelines (latency).")
]
Pairs = Annotated[int, typer.Option(min=1, help="Random 512-D pairs for the max score error.")]
Image = Annotated[Path | None, typer.Option(help="A photo with one face; default ships with insightface.")]
PairsFile = Annotated[Path, typer.Argument(help="Pairs CSV (image_a,image_b,same) or LFW pairs.txt.")]
Root = Annotated[Path | None, typer.Option(help="Image folder (default: the pairs file's folder).")]
Threshold = Annotated[float | None, typer.Option(help="Cosine threshold (default: the backend's).")]
Clients = Annotated[int, typer.Option(min=1, help="Concurrent clients.")]
Seconds = Annotated[float, typer.Option(min=0.1, help="Measured seconds per deployment.")]
Workers = Annotated[int, typer.Option(min=1, help="Matcher worker processes.")]
ParserExamples = Annotated[int, typer.Option(min=1, help="hypothesis examples per parser.")]
HttpExamples = Annotated[int, typer.Option(min=1, help="schemathesis examples per operation and kind.")]
Enrolments = Annotated[int, typer.Option(min=1, help="Acknowledged enrolments in the crash test.")]
Kills = Annotated[int, typer.Option(min=1, help="SIGKILLs of the matcher's process group.")]
LoadClients = Annotated[int, typer.Option(min=1, help="Concurrent clients in the steady load.")]
LoadSeconds = Annotated[float, typer.Option(min=1, help="Seconds of steady load after warm-up.")]
PairsCsv = Annotated[
    Path, typer.Option("--pairs", help="Labelled pairs CSV (image_a,image_b,same) to draw faces from.")
]
Tries = Annotated[int, typer.Option(min=1, help="Verifications per attack and per limit.")]
HonestTries = Annotated[int, typer.Option(min=1, help="Honest verifications (the pairs replicated).")]
CrashDatabase = Annotated[
    str,
    typer.Option(
        parser=choice(DATABASES),
        metavar="|".join(DATABASES),
        help="The matcher's database: sqlite, or postgresql (a private cluster).",
    ),
]

# -- output ---------------------------------------------------------------------------------------------


def emit(
    report: Report,
    *,
    markdown: Callable[[Report], str],
    json_path: Path | None,
    plot_path: Path | None = None,
    plot: Callable[[Report, Path], None] | None = None,
) -> None:
    """The JSON first (a long run's figures are never lost to its chart or table), then the PNG, then the
    markdown table alone on standard output."""
    if json_path is not None:
        json_path.write_text(json.dumps(report, indent=2) + "\n")
    if plot_path is not None and plot is not None:
        plot(report, plot_path)
    sys.stdout.write(markdown(report))


@contextmanager
def progress_bar() -> Iterator[Callable[..., None]]:
    """A progress bar on standard error for a benchmark's ``progress`` callback."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("starting", total=None)

        def show(step: str, done: float = 0.0, total: float | None = None) -> None:
            bar.update(task, description=step, completed=done, total=total)

        yield show


def progress_lines(step: str, done: float = 0.0, total: float | None = None) -> None:
    """A long run's steps as time-stamped lines on standard error."""
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {step}\n")


# -- commands -------------------------------------------------------------------------------------------


@bench_app.command("crypto")
def crypto(runs: Runs = 100, pairs: Pairs = 1000, preset: Presets = None, json_path: JsonPath = None) -> None:
    """CKKS core per preset: encrypt, compare, decide, sizes, max error; TenSEAL .dot as the baseline."""
    from veilface.bench import crypto as bench

    with reported():
        report = bench.run_crypto(runs=runs, pairs=pairs, presets=preset or ())
    emit(report, markdown=bench.markdown, json_path=json_path)


@bench_app.command("faces")
def faces(runs: Runs = 10, backend: Backends = None, model: Model = None, json_path: JsonPath = None) -> None:
    """Face pipeline per stage (decode, detect, landmarks, embed) per backend, on shipped photos."""
    from veilface.bench import faces as bench

    with reported():
        report = bench.run_faces(backends=[choice.value for choice in backend or ()], runs=runs, model=model)
    emit(report, markdown=bench.markdown, json_path=json_path)


@bench_app.command("latency")
def latency(
    backend: Backend = FaceBackend.dlib,
    model: Model = None,
    preset: KnownPreset = DEFAULT_PRESET,
    runs: Runs = 50,
    image: Image = None,
    json_path: JsonPath = None,
    plot_path: PlotPath = None,
) -> None:
    """End-to-end verification per stage, encrypted beside the plaintext stand-in, TenSEAL .dot as baseline."""
    from veilface.bench import latency as bench

    with reported(), progress_bar() as progress:
        report = bench.run_latency(
            backend=backend.value, preset=preset, runs=runs, image=image, model=model, progress=progress
        )
    emit(report, markdown=bench.markdown, json_path=json_path, plot_path=plot_path, plot=bench.plot)


@bench_app.command("accuracy")
def accuracy(
    pairs: PairsFile,
    root: Root = None,
    backend: Backend = FaceBackend.dlib,
    model: Model = None,
    preset: KnownPreset = DEFAULT_PRESET,
    threshold: Threshold = None,
    json_path: JsonPath = None,
    plot_path: PlotPath = None,
) -> None:
    """FMR, FNMR, EER and DET of the plaintext and encrypted pipelines on the same pairs; their agreement."""
    from veilface.bench import accuracy as bench

    with reported(), progress_bar() as progress:
        report = bench.run_accuracy(
            pairs,
            root=root,
            backend=backend.value,
            preset=preset,
            threshold=threshold,
            model=model,
            progress=progress,
        )
    emit(report, markdown=bench.markdown, json_path=json_path, plot_path=plot_path, plot=bench.plot)


@bench_app.command("load")
def load(
    clients: Clients = 4,
    seconds: Seconds = 20.0,
    workers: Workers = 2,
    json_path: JsonPath = None,
    plot_path: PlotPath = None,
) -> None:
    """Concurrent verifications against real matcher workers, encrypted then the stand-in: throughput, p99."""
    from veilface.bench import load as bench

    with reported(), progress_bar() as progress:
        report = bench.run_load(clients=clients, seconds=seconds, workers=workers, progress=progress)
    emit(report, markdown=bench.markdown, json_path=json_path, plot_path=plot_path, plot=bench.plot)


@bench_app.command("reliability")
def reliability(
    parser_examples: ParserExamples = 5000,
    http_examples: HttpExamples = 1000,
    enrolments: Enrolments = 1000,
    rounds: Kills = 5,
    clients: Clients = 8,
    load_clients: LoadClients = 50,
    load_seconds: LoadSeconds = 60.0,
    json_path: JsonPath = None,
) -> None:
    """Fuzzing, crash safety, outages, SIGTERM restarts, memory under load; exit 1 if any falls short."""
    from veilface.bench import reliability as bench

    with reported():
        report = bench.run_reliability(
            parser_examples=parser_examples,
            http_examples=http_examples,
            enrolments=enrolments,
            rounds=rounds,
            clients=clients,
            load_clients=load_clients,
            load_seconds=load_seconds,
            progress=progress_lines,
        )
    emit(report, markdown=bench.markdown, json_path=json_path)
    raise typer.Exit(1 if report["problems"] else 0)


@bench_app.command("crash")
def crash(
    enrolments: Enrolments = 1000,
    rounds: Kills = 5,
    clients: Clients = 8,
    database: CrashDatabase = "sqlite",
    json_path: JsonPath = None,
) -> None:
    """Enrolments in flight while the matcher is SIGKILLed: every acknowledged one present and verifying."""
    from veilface.bench import reliability as bench

    with reported():
        report = bench.run_crash(
            enrolments=enrolments, rounds=rounds, clients=clients, database=database, progress=progress_lines
        )
    emit(report, markdown=bench.crash_markdown, json_path=json_path)
    raise typer.Exit(1 if bench.crash_problems(report) else 0)


@bench_app.command("crafted")
def crafted(
    pairs: PairsCsv,
    root: Root = None,
    tries: Tries = 100,
    honest_tries: HonestTries = 10_000,
    clients: Clients = 4,
    workers: Workers = 2,
    json_path: JsonPath = None,
) -> None:
    """Crafted probes and templates of a modified client, replays and honest probes against real services."""
    from veilface.bench import crafted as bench

    with reported(), progress_bar() as progress:
        report = bench.run_crafted(
            pairs,
            root=root,
            tries=tries,
            honest_tries=honest_tries,
            clients=clients,
            workers=workers,
            progress=progress,
        )
    emit(report, markdown=bench.markdown, json_path=json_path)
