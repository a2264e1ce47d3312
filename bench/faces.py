"""Time per stage of the client's face pipeline (decode, detect, landmarks, embed), per backend.

    python -m veilface.bench.faces [--runs N] [--backend B ...] [--model PATH] [--json PATH]

Inputs are photos that installed packages ship: Tom Hanks (112 x 112, one face), t1.jpg (1280 x 886,
six faces), and Tom Hanks enlarged on a 4000 x 3000 canvas (JPEG), which exercises the shrink-for-detection
path. Each image is encoded bytes in memory (no disk in the timings), run once to warm up, then N times.
A backend whose model files are missing (insightface without a pack) is reported as skipped.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path
from typing import Any

from PIL import Image

from veilface.bench._stats import machine, markdown_table, percentiles
from veilface.client.faces import BACKENDS, STAGES, load_embedder
from veilface.client.samples import sample_images
from veilface.crypto import VeilfaceError


def bench_images() -> dict[str, bytes]:
    """Name → encoded image bytes for the three benchmark inputs."""
    paths = sample_images()
    with Image.open(paths["tom_hanks"]) as opened:
        tom = opened.convert("RGB")
    canvas = Image.new("RGB", (4000, 3000), (235, 235, 235))
    canvas.paste(tom.resize((672, 672), Image.Resampling.BICUBIC), (1500, 1000))
    large = io.BytesIO()
    canvas.save(large, "JPEG", quality=90)
    return {
        "tom_hanks 112x112": paths["tom_hanks"].read_bytes(),
        "t1 1280x886": paths["t1"].read_bytes(),
        "large 4000x3000": large.getvalue(),
    }


def run(backends: list[str], runs: int, model: Path | None = None) -> dict[str, Any]:
    images = bench_images()
    results: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    for backend in backends:
        try:
            embedder = load_embedder(backend, model_path=model if backend == "insightface" else None)
        except VeilfaceError as exc:
            skipped.append({"backend": backend, "reason": exc.message})
            continue
        for name, data in images.items():
            faces, _ = embedder.faces_with_timings(data)
            samples: dict[str, list[float]] = {stage: [] for stage in (*STAGES, "total")}
            for _ in range(runs):
                _, seconds = embedder.faces_with_timings(data)
                for stage in STAGES:
                    samples[stage].append(seconds[stage] * 1000.0)
                samples["total"].append(sum(seconds.values()) * 1000.0)
            results.append(
                {
                    "backend": backend,
                    "model_id": embedder.model_id,
                    "image": name,
                    "faces": len(faces),
                    "ms": {stage: percentiles(values) for stage, values in samples.items()},
                }
            )
    return {"benchmark": "faces", "runs": runs, "machine": machine(), "results": results, "skipped": skipped}


def markdown(report: dict[str, Any]) -> str:
    headers = ["backend", "image", "faces", *STAGES, "total"]
    rows = [
        [
            result["backend"],
            result["image"],
            result["faces"],
            *(f"{result['ms'][stage]['p50']:.1f} ({result['ms'][stage]['p95']:.1f})" for stage in (*STAGES, "total")),
        ]
        for result in report["results"]
    ]
    lines = [
        f"Face pipeline, ms per image: p50 (p95) over {report['runs']} runs, one process, "
        f"{report['machine']['cpu'] or 'unknown CPU'}.",
        "",
        markdown_table(headers, rows),
    ]
    lines += [f"\nskipped {item['backend']}: {item['reason']}" for item in report["skipped"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="timed runs per image (after one warm-up run)")
    parser.add_argument("--backend", action="append", choices=BACKENDS, help="repeatable; default all")
    parser.add_argument("--model", type=Path, help="insightface model pack directory or recognition .onnx")
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    report = run(args.backend or list(BACKENDS), args.runs, args.model)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    sys.stdout.write(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
