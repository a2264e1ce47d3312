"""Micro-benchmark of the CKKS core per preset, against TenSEAL's own ``ckks_vector.dot`` in the same run.

``veilface bench crypto`` (``veilface.cli.bench``) runs ``run_crypto`` and prints ``markdown`` of its report.

Per preset: client encryption (with serialisation), the matcher's compare (probe and template bytes in,
blinded bytes out: load, multiply, blind, relinearise, re-randomise, serialise) with its projections and
encryptions of zero made beforehand, as a worker does between requests, and without them (unstocked),
the authority's decision (decrypt the constant coefficients, sign), bytes of every object, and the max
score error over P random 512-D unit-vector pairs. The baseline is TenSEAL's ``.dot`` at N=8192
[60,40,60] Delta=2^40 (the smallest TenSEAL setting whose ``.dot`` error is <= 1e-4) over the same scope
as compare: load the probe, ``.dot`` with the template, serialise. Rounds interleave the variants so
machine noise hits them alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np
import tenseal as ts

import veilface.crypto as vc
from veilface.bench._stats import Report, machine, markdown_table, percentiles, timed
from veilface.crypto.testing import blinded_values, compare_steps, compare_with_factors

DIMENSION = 512
MODEL = "bench-random-512"
TENSEAL_PARAMETERS = "N=8192 [60,40,60] Delta=2^40"
# Timed whole, per round; the SEAL steps of a compare (veilface.crypto.testing.compare_steps) come after.
TIMED = ("encrypt", "compare", "compare_unstocked", "decide", "tenseal_dot")


def unit_vector(rng: np.random.Generator, dimension: int = DIMENSION) -> np.ndarray:
    vector = rng.normal(size=dimension)
    return vector / np.linalg.norm(vector)


class TensealDot:
    """TenSEAL's high-level path: replicated ckks_vector, rotations via Galois keys, .dot, serialise."""

    def __init__(self) -> None:
        context = ts.context(ts.SCHEME_TYPE.CKKS, 8192, coeff_mod_bit_sizes=[60, 40, 60])
        context.global_scale = 2.0**40
        context.generate_galois_keys()
        self.secret = context
        public = context.copy()
        public.make_context_public()
        self.evaluation_bytes = len(public.serialize(save_galois_keys=True, save_relin_keys=True))
        self.server = ts.context_from(public.serialize(save_galois_keys=True, save_relin_keys=True))

    def encrypt(self, vector: np.ndarray) -> bytes:
        return bytes(ts.ckks_vector(self.secret, vector.tolist()).serialize())

    def compare(self, template: bytes, probe: bytes) -> bytes:
        stored = ts.ckks_vector_from(self.server, template)
        fresh = ts.ckks_vector_from(self.server, probe)
        return bytes(stored.dot(fresh).serialize())

    def score(self, result: bytes) -> float:
        return float(ts.ckks_vector_from(self.secret, result).decrypt()[0])


def bench_preset(preset: str, runs: int, pairs: int, baseline: TensealDot | None, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    keys = vc.key_ceremony(preset, model_id=MODEL, dimension=DIMENSION)
    client = vc.CkksClientCipher(keys.public, model_id=MODEL, dimension=DIMENSION)
    matcher = vc.CkksMatcherCipher(keys.evaluation, model_id=MODEL, dimension=DIMENSION)
    authority = vc.CkksAuthorityCipher(keys.secret)

    template_vector, probe_vector = unit_vector(rng), unit_vector(rng)
    template = client.encrypt(template_vector)
    tenseal_template = baseline.encrypt(template_vector) if baseline else b""
    tenseal_probe = baseline.encrypt(probe_vector) if baseline else b""
    blinded = b""
    steps = compare_steps(matcher, template, client.encrypt(probe_vector))
    times: dict[str, list[float]] = {stage: [] for stage in (*TIMED, *steps)}
    for _ in range(runs):
        for name in steps:
            times[name].append(timed(steps[name])[1])
        probe, ms = timed(lambda: client.encrypt(probe_vector))
        times["encrypt"].append(ms)
        # Unstocked: the compare makes its encryption of zero and secret projection planes itself. Stocked:
        # they were made beforehand, as a matcher worker does between requests.
        times["compare_unstocked"].append(timed(partial(matcher.compare, template, probe, 0.3))[1])
        matcher.replenish(1)
        blinded, ms = timed(partial(matcher.compare, template, probe, 0.3))
        times["compare"].append(ms)

        def decide(blinded: bytes = blinded) -> vc.DecisionRecord:
            _, outcome = authority.decide(blinded)
            return vc.sign_decision(
                keys.signing_key,
                request_id="r",
                subject_ref="s",
                match=outcome is vc.Outcome.MATCH,
                key_id=keys.key_id,
                client_nonce="n",
                probe_sha256="h",
            )

        times["decide"].append(timed(decide)[1])
        if baseline:
            times["tenseal_dot"].append(timed(lambda: baseline.compare(tenseal_template, tenseal_probe))[1])

    errors = []
    for i in range(pairs):
        a, b = unit_vector(rng), unit_vector(rng)
        mix = rng.uniform(-1, 1)
        b = mix * a + np.sqrt(1 - mix**2) * b
        b /= np.linalg.norm(b)
        r = 1 + i % 1000  # known factors, so that the score can be read back (the matcher draws r <= 1000)
        blinded_pair = compare_with_factors(matcher, client.encrypt(a), client.encrypt(b), 0.0, [r])
        _, values = blinded_values(authority, blinded_pair)
        errors.append(abs(values[-1] / r - float(a @ b)))

    result: dict[str, Any] = {
        "preset": preset,
        "dimension": DIMENSION,
        "runs": runs,
        "pairs": pairs,
        "ms": {name: percentiles(samples) for name, samples in times.items() if samples},
        "bytes": {
            "probe": len(probe),
            "template": len(template),
            "blinded_result": len(blinded),
            "evaluation_bundle": keys.evaluation.size,
            "public_bundle": keys.public.size,
        },
        "max_abs_score_error": float(max(errors)) if errors else None,
    }
    if baseline:
        result["bytes"]["tenseal_probe"] = len(tenseal_probe)
        result["bytes"]["tenseal_evaluation_context"] = baseline.evaluation_bytes
        result["compare_speedup_vs_tenseal_dot"] = round(
            result["ms"]["tenseal_dot"]["p50"] / result["ms"]["compare"]["p50"], 2
        )
        result["unstocked_compare_speedup_vs_tenseal_dot"] = round(
            result["ms"]["tenseal_dot"]["p50"] / result["ms"]["compare_unstocked"]["p50"], 2
        )
    return result


def tenseal_dot_error(baseline: TensealDot, pairs: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    worst = 0.0
    for _ in range(pairs):
        a, b = unit_vector(rng), unit_vector(rng)
        worst = max(worst, abs(baseline.score(baseline.compare(baseline.encrypt(a), baseline.encrypt(b))) - a @ b))
    return float(worst)


def run_crypto(*, runs: int, pairs: int, presets: Sequence[str] = ()) -> Report:
    """Every preset in ``presets`` (default: all), ``runs`` timed rounds and ``pairs`` random 512-D pairs each."""
    presets = list(presets) or list(vc.PRESETS)
    baseline = TensealDot()
    results = [bench_preset(p, runs, pairs, baseline, seed=i) for i, p in enumerate(presets)]
    return {
        "machine": machine(),
        "presets": results,
        "tenseal_dot": {
            "parameters": TENSEAL_PARAMETERS,
            "max_abs_score_error": tenseal_dot_error(baseline, min(pairs, 200), seed=99),
        },
    }


def markdown(report: Report) -> str:
    rows = []
    for r in report["presets"]:
        ms = r["ms"]
        rows.append(
            [
                r["preset"],
                f"{ms['encrypt']['p50']:.2f}",
                f"{ms['compare']['p50']:.2f} / {ms['compare']['p95']:.2f}",
                f"{ms['compare_unstocked']['p50']:.2f}",
                f"{ms['decide']['p50']:.3f}",
                f"{ms['tenseal_dot']['p50']:.2f}",
                f"{r['compare_speedup_vs_tenseal_dot']}x",
                f"{r['bytes']['probe'] / 1000:.1f} KB",
                f"{r['bytes']['blinded_result'] / 1000:.1f} KB",
                f"{r['bytes']['evaluation_bundle'] / 1000:.1f} KB",
                f"{r['max_abs_score_error']:.2e} ({r['pairs']} pairs)",
            ]
        )
    table = markdown_table(
        [
            "preset",
            "encrypt ms",
            "compare ms p50/p95 (stocked)",
            "unstocked",
            "decide+sign ms",
            "TenSEAL .dot ms",
            "speed-up",
            "probe",
            "to authority",
            "evaluation keys",
            "max score error",
        ],
        rows,
    )
    names = [name for name in report["presets"][0]["ms"] if name not in TIMED]
    steps = markdown_table(
        ["preset", *(f"{name} ms" for name in names)],
        [[r["preset"], *(f"{r['ms'][name]['p50']:.3f}" for name in names)] for r in report["presets"]],
    )
    tenseal = report["tenseal_dot"]
    return (
        f"{table}\n\nTenSEAL .dot ({tenseal['parameters']}) max error: {tenseal['max_abs_score_error']:.2e}\n\n"
        "What a compare is made of, p50 of each SEAL step alone (see docs/design.md §3 for how many of each a "
        f"verification makes, plus plaintext products and adds):\n\n{steps}\n"
    )
