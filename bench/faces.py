"""Time per stage of the client's face pipeline (decode, detect, landmarks, embed), per backend.

``veilface bench faces`` (``veilface.cli.bench``) runs ``run_faces`` and prints ``markdown`` of its report.

Inputs are photos that installed packages ship: Tom Hanks (112 x 112, one face), t1.jpg (1280 x 886,
six faces), and Tom Hanks enlarged on a 4000 x 3000 canvas (JPEG), which exercises the shrink-for-detection
path. Each image is encoded bytes in memory (no disk in the timings), run once to warm up, then N times.
A backend whose model files are missing (insightface without a pack) is reported as skipped.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from veilface.bench._stats import Report, machine, markdown_table, percentiles
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


def run_faces(*, runs: int, backends: Sequence[str] = (), model: Path | None = None) -> Report:
    """Each backend in ``backends`` (default: all) on the three images, ``runs`` timed runs after a warm-up."""
    images = bench_images()
    results: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    for backend in backends or BACKENDS:
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


def markdown(report: Report) -> str:
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
