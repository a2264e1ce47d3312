"""Verification latency per stage: the encrypted pipeline and the plaintext stand-in, interleaved in one run.

``veilface bench latency`` (``veilface.cli.bench``) runs ``run_latency`` and prints ``markdown`` of its report.

Each round runs the client's whole pipeline once per pipeline (the order alternates between rounds), from
image bytes to a checked decision: decode + detect, landmarks, embed, encrypt (the stand-in packs floats
instead), then one verification over HTTP through real matcher and authority processes (upload, match,
decide, and the client's signature, nonce and probe-hash checks). Both pipelines run the same services
code, storage, budgets, audit and signatures under the same keys; only the ciphers differ.

In the same rounds, in this process (no HTTP, IPC or database):

- ``match``: the matcher's compare, probe and template bytes in, blinded bytes out, with the projection planes and
  encryptions of zero precomputed as a worker does between requests; ``refill``: making those (the
  worker's CPU per verification is ``match`` + ``refill``); ``match_unstocked``: the compare without them;
- ``decide``: the authority's decision on those blinded bytes (decrypt, read, sign);
- ``serialise``: SEAL ciphertext to bytes, the last step of ``encrypt`` (included in it);
- at 512-D on random unit vectors: the same compare, and TenSEAL's ``ckks_vector.dot`` at N=8192
  [60,40,60] Delta=2^40 over the same scope (load the probe, ``.dot``, serialise) as the baseline.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import veilface.crypto as vc
from veilface.bench._stats import Progress, Report, machine, markdown_table, percentiles, quiet, targets_table, timed
from veilface.bench.crypto import TENSEAL_PARAMETERS, TensealDot, unit_vector
from veilface.bench.harness.deployment import PIPELINES, Pipeline, Pipelines, matcher_stage_means, pipelines
from veilface.bench.harness.processes import OtherLoad
from veilface.client.faces import StagedFaceEmbedder, embed_single, load_embedder
from veilface.client.samples import sample_images
from veilface.crypto.testing import compare_steps

SUBJECT = "bench-latency"
WARMUP_ROUNDS = 1
BASELINE_DIMENSION = 512
BASELINE_MODEL = "bench-random-512"
# Stages of one end-to-end verification, in pipeline order; ``total`` is their wall-clock sum.
PIPELINE_STAGES = ("decode_detect", "landmarks", "embed", "encrypt", "round_trip")
ISSUE_7 = {
    "compare_ms": 1.0,
    "speedup_vs_tenseal_dot": 15.0,
    "decide_ms": 0.5,
    "probe_bytes": 70 * 1000,
    "evaluation_bundle_bytes": 256 * 1024,
    "encryption_overhead": 0.05,
}


class _Local:
    """A pipeline's matcher and authority ciphers in this process, for the stage timings without HTTP."""

    def __init__(
        self,
        matcher: vc.CkksMatcherCipher | vc.PlaintextMatcherCipher,
        authority: vc.CkksAuthorityCipher | vc.PlaintextAuthorityCipher,
        keyset: vc.KeySet,
        threshold: float,
    ) -> None:
        self.matcher = matcher
        self.authority = authority
        self.keyset = keyset
        self.threshold = threshold

    def compare(self, template: bytes, probe: bytes) -> tuple[bytes, float]:
        """Blinded bytes and the milliseconds of the compare alone (using stocked randomness if there is any)."""
        result: bytes
        result, ms = timed(lambda: self.matcher.compare(template, probe, self.threshold))
        return result, ms

    def refill(self) -> float | None:
        """Milliseconds to stock one verification's projection planes and encryption of zero, as a worker does between
        requests (CKKS only). A verification uses both (norm pair, score): the stock is empty after a compare."""
        if not isinstance(self.matcher, vc.CkksMatcherCipher):
            return None
        matcher = self.matcher
        return timed(lambda: matcher.replenish(1))[1]

    def decide(self, blinded: bytes) -> tuple[vc.DecisionRecord, float]:
        """The authority's decrypt, read and sign (no HTTP, no audit write), and its milliseconds."""

        def decide_and_sign() -> vc.DecisionRecord:
            _, outcome = self.authority.decide(blinded)
            return vc.sign_decision(
                self.keyset.signing_key,
                request_id="bench-request-0000",
                subject_ref="0" * 64,
                match=outcome is vc.Outcome.MATCH,
                key_id=self.keyset.key_id,
                client_nonce="bench-nonce-00000000",
                probe_sha256="0" * 64,
            )

        record: vc.DecisionRecord
        record, ms = timed(decide_and_sign)
        return record, ms


def _end_to_end(pipeline: Pipeline, embedder: StagedFaceEmbedder, image: bytes) -> tuple[dict[str, float], bytes, bool]:
    """One verification from image bytes to a checked decision: milliseconds per stage, the probe, the bit."""
    started = time.perf_counter()
    faces, seconds = embedder.faces_with_timings(image)
    encrypting = time.perf_counter()
    probe = pipeline.client_cipher.encrypt(faces[0].embedding)
    sending = time.perf_counter()
    record = pipeline.client.verify_ciphertext(SUBJECT, probe)
    done = time.perf_counter()
    stages = {
        "decode_detect": (seconds["decode"] + seconds["detect"]) * 1000.0,
        "landmarks": seconds["landmarks"] * 1000.0,
        "embed": seconds["embed"] * 1000.0,
        "encrypt": (sending - encrypting) * 1000.0,
        "round_trip": (done - sending) * 1000.0,
        "total": (done - started) * 1000.0,
    }
    return stages, probe, record.match


class _Baseline:
    """The compare at 512-D on random unit vectors, beside TenSEAL's ``.dot`` over the same scope."""

    def __init__(self, preset: str, rng: np.random.Generator) -> None:
        self.tenseal = TensealDot()
        keys = vc.key_ceremony(preset, model_id=BASELINE_MODEL, dimension=BASELINE_DIMENSION)
        self.client = vc.CkksClientCipher(keys.public, model_id=BASELINE_MODEL, dimension=BASELINE_DIMENSION)
        matcher = vc.CkksMatcherCipher(keys.evaluation, model_id=BASELINE_MODEL, dimension=BASELINE_DIMENSION)
        self.local = _Local(matcher, vc.CkksAuthorityCipher(keys.secret), keys, 0.0)
        template, self.probe_vector = unit_vector(rng, BASELINE_DIMENSION), unit_vector(rng, BASELINE_DIMENSION)
        self.template = self.client.encrypt(template)
        self.tenseal_template = self.tenseal.encrypt(template)
        self.tenseal_probe = self.tenseal.encrypt(self.probe_vector)

    def measure(self) -> dict[str, float]:
        probe = self.client.encrypt(self.probe_vector)
        unstocked_ms = self.local.compare(self.template, probe)[1]
        self.local.refill()
        return {
            "unstocked": unstocked_ms,
            "stocked": self.local.compare(self.template, probe)[1],
            "tenseal_dot": timed(lambda: self.tenseal.compare(self.tenseal_template, self.tenseal_probe))[1],
        }


class _Rounds:
    """Both deployments' end-to-end verifications and in-process stages, one round at a time."""

    def __init__(self, deployed: Pipelines, embedder: StagedFaceEmbedder, image: bytes, template: np.ndarray) -> None:
        self.deployed, self.embedder, self.image = deployed, embedder, image
        keyset, threshold = deployed.keyset, embedder.default_threshold
        model_id, dimension = embedder.model_id, embedder.dimension
        matcher = vc.CkksMatcherCipher(keyset.evaluation, model_id=model_id, dimension=dimension)
        self.local = {
            "encrypted": _Local(matcher, vc.CkksAuthorityCipher(keyset.secret), keyset, threshold),
            "plaintext": _Local(
                vc.PlaintextMatcherCipher(key_id=keyset.key_id, model_id=model_id, dimension=dimension),
                vc.PlaintextAuthorityCipher(key_id=keyset.key_id),
                keyset,
                threshold,
            ),
        }
        self.templates: dict[str, bytes] = {}
        for name, pipeline in deployed.pipelines.items():
            self.templates[name] = pipeline.client_cipher.encrypt(template)
            pipeline.client.enroll_ciphertext(SUBJECT, self.templates[name])
        # A fresh client encryption turned into bytes, the last step of encrypt (the template is one).
        encrypted = self.templates["encrypted"]
        self.serialise = compare_steps(matcher, encrypted, encrypted)["serialise"]
        self.probes: dict[str, bytes] = {}
        self.blinded: dict[str, bytes] = {}

    def measure(self, order: tuple[str, ...]) -> tuple[dict[str, dict[str, float]], dict[str, bool]]:
        """Milliseconds per stage per deployment, and each deployment's decision, for one round."""
        stages: dict[str, dict[str, float]] = {}
        matched: dict[str, bool] = {}
        for name in order:
            stages[name], self.probes[name], matched[name] = _end_to_end(
                self.deployed.pipelines[name], self.embedder, self.image
            )
        stages["encrypted"]["match_unstocked"] = self.local["encrypted"].compare(
            self.templates["encrypted"], self.probes["encrypted"]
        )[1]
        for name in order:
            local = self.local[name]
            refill_ms = local.refill()  # the stock is empty: the unstocked compare made its own
            if refill_ms is not None:
                stages[name]["refill"] = refill_ms
            self.blinded[name], stages[name]["match"] = local.compare(self.templates[name], self.probes[name])
            stages[name]["decide"] = local.decide(self.blinded[name])[1]
        stages["encrypted"]["serialise"] = timed(self.serialise)[1]
        return stages, matched


def run_latency(
    *,
    backend: str,
    preset: str,
    runs: int,
    image: Path | None = None,
    model: Path | None = None,
    progress: Progress = quiet,
) -> Report:
    """Set up (keys, services, baseline), then ``runs`` interleaved rounds after one warm-up round.

    ``image`` is a photo with exactly one usable face (default: Tom Hanks, shipped with insightface);
    ``model`` an insightface pack or recognition .onnx for that backend.
    """
    embedder = load_embedder(backend, model_path=model)
    image_path = image or sample_images()["tom_hanks"]
    image_bytes = image_path.read_bytes()
    # The enrolment policy refuses an image without exactly one usable face, before any timing.
    template_embedding = embed_single(embedder, image_bytes)
    baseline = _Baseline(preset, np.random.default_rng(7))
    samples: dict[str, dict[str, list[float]]] = {name: {} for name in PIPELINES}
    wide_samples: dict[str, list[float]] = {"stocked": [], "unstocked": [], "tenseal_dot": []}
    matches: dict[str, int] = dict.fromkeys(PIPELINES, 0)

    with tempfile.TemporaryDirectory(prefix="veilface-bench-") as root:
        with pipelines(
            Path(root),
            preset=preset,
            model_id=embedder.model_id,
            dimension=embedder.dimension,
            threshold=embedder.default_threshold,
        ) as deployed:
            rounds = _Rounds(deployed, embedder, image_bytes, template_embedding)
            # The warm-up round runs inside too: one round in many, not worth a second loop.
            with OtherLoad() as other_load:
                for index in range(WARMUP_ROUNDS + runs):
                    stages, matched = rounds.measure(PIPELINES if index % 2 == 0 else PIPELINES[::-1])
                    wide = baseline.measure()
                    if index < WARMUP_ROUNDS:
                        continue
                    for name in PIPELINES:
                        matches[name] += matched[name]
                        for stage, ms in stages[name].items():
                            samples[name].setdefault(stage, []).append(ms)
                    for kind, ms in wide.items():
                        wide_samples[kind].append(ms)
                    progress("latency rounds", index - WARMUP_ROUNDS + 1, runs)
            byte_counts = {
                name: {
                    "probe": len(rounds.probes[name]),
                    "template": len(rounds.templates[name]),
                    "response": pipeline.transport.response_bytes["verify"],
                    "blinded_result": len(rounds.blinded[name]),
                }
                for name, pipeline in deployed.pipelines.items()
            }
            public_response = deployed.pipelines["encrypted"].transport.response_bytes["public"]
            stage_means = {
                name: matcher_stage_means(pipeline.services.matcher_url, deployed.token)
                for name, pipeline in deployed.pipelines.items()
            }
            ready_s = {name: round(pipeline.deployment.ready_s, 3) for name, pipeline in deployed.pipelines.items()}
            keyset = deployed.keyset

    stages_ms = {stage: percentiles(values) for stage, values in samples["encrypted"].items()}
    plaintext_stages_ms = {stage: percentiles(values) for stage, values in samples["plaintext"].items()}
    compare_512_ms = {kind: percentiles(wide_samples[kind]) for kind in ("stocked", "unstocked")}
    tenseal_dot_ms = percentiles(wide_samples["tenseal_dot"])
    paired = np.asarray(samples["encrypted"]["total"]) / np.asarray(samples["plaintext"]["total"])
    report: Report = {
        "benchmark": "latency",
        "machine": machine(),
        "preset": preset,
        "backend": backend,
        "model_id": embedder.model_id,
        "dimension": embedder.dimension,
        "image": image_path.name,
        "threshold": embedder.default_threshold,
        "runs": runs,
        "stages_ms": stages_ms,
        "plaintext_stages_ms": plaintext_stages_ms,
        "encrypted_total_ms": stages_ms["total"],
        "plaintext_total_ms": plaintext_stages_ms["total"],
        "encrypted_to_plaintext_total": round(stages_ms["total"]["p50"] / plaintext_stages_ms["total"]["p50"], 4),
        "encrypted_to_plaintext_total_paired_p50": round(float(np.median(paired)), 4),
        "compare_512_ms": compare_512_ms,
        "tenseal_dot_ms": tenseal_dot_ms,
        "tenseal_dot_parameters": f"{TENSEAL_PARAMETERS}, {BASELINE_DIMENSION}-D",
        "match_speedup_vs_tenseal_dot": round(tenseal_dot_ms["p50"] / compare_512_ms["stocked"]["p50"], 2),
        "bytes": {
            **byte_counts["encrypted"],
            "evaluation_bundle": keyset.evaluation.size,
            "public_bundle": keyset.public.size,
            "public_bundle_response": public_response,
            "tenseal_probe_512": len(baseline.tenseal_probe),
            "tenseal_evaluation_context": baseline.tenseal.evaluation_bytes,
        },
        "plaintext_bytes": byte_counts["plaintext"],
        "matches": matches,
        "matcher_stage_mean_ms": stage_means,
        "other_load_cores": other_load.cores,
        "services_ready_s": ready_s,
    }
    report["issue_7_targets"] = targets(report)
    return report


def targets(report: Report) -> list[dict[str, Any]]:
    """Issue 7's latency, speed and size targets against this run's figures."""
    stages, size = report["stages_ms"], report["bytes"]
    overhead = report["encrypted_to_plaintext_total"] - 1.0
    rows = [
        ("matcher compare p50 <= 1 ms", stages["match"]["p50"], stages["match"]["p50"] <= ISSUE_7["compare_ms"]),
        (
            "compare >= 15x faster than TenSEAL .dot (512-D)",
            report["match_speedup_vs_tenseal_dot"],
            report["match_speedup_vs_tenseal_dot"] >= ISSUE_7["speedup_vs_tenseal_dot"],
        ),
        ("authority decide p50 <= 0.5 ms", stages["decide"]["p50"], stages["decide"]["p50"] <= ISSUE_7["decide_ms"]),
        ("probe <= 70 KB", size["probe"], size["probe"] <= ISSUE_7["probe_bytes"]),
        ("stored template <= 70 KB", size["template"], size["template"] <= ISSUE_7["probe_bytes"]),
        (
            "evaluation bundle <= 256 KB",
            size["evaluation_bundle"],
            size["evaluation_bundle"] <= ISSUE_7["evaluation_bundle_bytes"],
        ),
        ("encryption adds <= 5% end to end", round(overhead, 4), overhead <= ISSUE_7["encryption_overhead"]),
    ]
    return [{"target": target, "measured": measured, "met": bool(met)} for target, measured, met in rows]


def _ms(cell: dict[str, float] | None) -> str:
    return f"{cell['p50']:.2f} ({cell['p95']:.2f})" if cell else "-"


def markdown(report: Report) -> str:
    encrypted, plaintext = report["stages_ms"], report["plaintext_stages_ms"]
    order = (*PIPELINE_STAGES, "total", "serialise", "match", "refill", "match_unstocked", "decide")
    rows = [[stage, _ms(encrypted.get(stage)), _ms(plaintext.get(stage))] for stage in order]
    size, plain_size = report["bytes"], report["plaintext_bytes"]
    byte_rows = [
        [what, f"{size[what]:,}", f"{plain_size[what]:,}" if what in plain_size else "-"]
        for what in ("probe", "template", "response", "blinded_result", "evaluation_bundle", "public_bundle")
    ]
    lines = [
        f"Verification latency, ms: p50 (p95) over {report['runs']} interleaved rounds; {report['backend']} "
        f"({report['model_id']}, {report['dimension']}-D) on {report['image']}, preset {report['preset']}; "
        f"{report['machine']['cpu'] or 'unknown CPU'}, {report['machine']['cores']} cores.",
        "",
        markdown_table(["stage", "encrypted", "plaintext stand-in"], rows),
        "",
        f"End to end: encrypted / plaintext = {report['encrypted_to_plaintext_total']:.3f} "
        f"(p50 {encrypted['total']['p50']:.1f} ms vs {plaintext['total']['p50']:.1f} ms; "
        f"median of per-round ratios {report['encrypted_to_plaintext_total_paired_p50']:.3f}).",
        f"Compare at 512-D: {_ms(report['compare_512_ms']['stocked'])} ms stocked, "
        f"{_ms(report['compare_512_ms']['unstocked'])} ms unstocked; TenSEAL .dot "
        f"({report['tenseal_dot_parameters']}): {_ms(report['tenseal_dot_ms'])} ms; "
        f"speed-up {report['match_speedup_vs_tenseal_dot']}x.",
        "Inside the matcher (mean ms over every request it served, from its /metrics; compare includes the "
        "hand-over to a worker process, authority is its whole round trip): "
        + "; ".join(
            f"{name}: " + ", ".join(f"{stage} {ms:.2f}" for stage, ms in report["matcher_stage_mean_ms"][name].items())
            for name in PIPELINES
        )
        + ".",
        f"Other processes on this machine used {report['other_load_cores']:.2f} cores during the rounds "
        "(0 when undisturbed).",
        "",
        markdown_table(["bytes", "encrypted", "plaintext stand-in"], byte_rows),
        "",
        targets_table(report["issue_7_targets"]),
    ]
    return "\n".join(lines) + "\n"


def plot(report: Report, path: Path) -> None:
    """Stacked p50 per pipeline stage for both pipelines, and the in-process compare/decide times."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (stacked, inner) = plt.subplots(2, 1, figsize=(9, 7))
    for row, key in enumerate(("plaintext_stages_ms", "stages_ms")):
        left = 0.0
        for number, stage in enumerate(PIPELINE_STAGES):
            width = report[key][stage]["p50"]
            stacked.barh(row, width, left=left, color=f"C{number}", label=stage if row == 0 else None)
            left += width
    stacked.set_yticks([0, 1], ["plaintext stand-in", "encrypted"])
    stacked.set_xlabel("ms (p50)")
    stacked.set_title(f"End-to-end verification, {report['model_id']} on {report['image']}")
    stacked.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=len(PIPELINE_STAGES), fontsize="small")
    bars = {
        f"compare {report['dimension']}-D": report["stages_ms"]["match"]["p50"],
        f"compare {report['dimension']}-D unstocked": report["stages_ms"]["match_unstocked"]["p50"],
        "compare 512-D": report["compare_512_ms"]["stocked"]["p50"],
        "TenSEAL .dot 512-D": report["tenseal_dot_ms"]["p50"],
        "decide + sign": report["stages_ms"]["decide"]["p50"],
        "stand-in compare": report["plaintext_stages_ms"]["match"]["p50"],
    }
    drawn = inner.bar(list(bars), list(bars.values()), color="tab:blue")
    inner.bar_label(drawn, fmt="%.2f", fontsize="small")
    inner.set_yscale("log")
    inner.set_ylabel("ms (p50, log)")
    inner.set_title("In-process stages (no HTTP)")
    inner.tick_params(axis="x", labelrotation=20, labelsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
