"""Micro-benchmark of the CKKS core per preset, against TenSEAL's own ``ckks_vector.dot`` in the same run.

    python -m veilface.bench.crypto [--runs N] [--pairs P] [--json PATH]

Per preset: client encryption (with serialisation), the matcher's compare (probe and template bytes in,
blinded bytes out: load, multiply, blind, relinearise, re-randomise, serialise) with its masks and
encryptions of zero made beforehand, as a worker does between requests, and without them (unstocked),
the authority's decision (decrypt the constant coefficients, sign), bytes of every object, and the max
score error over P random 512-D unit-vector pairs. The baseline is TenSEAL's ``.dot`` at N=8192
[60,40,60] Delta=2^40 (the smallest TenSEAL setting whose ``.dot`` error is <= 1e-4) over the same scope
as compare: load the probe, ``.dot`` with the template, serialise. Rounds interleave the variants so
machine noise hits them alike.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import tenseal as ts
import tenseal.sealapi as sealapi

import veilface.crypto as vc
from veilface.bench._stats import machine, markdown_table, percentiles, timed

DIMENSION = 512
MODEL = "bench-random-512"


def _unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=DIMENSION)
    return v / np.linalg.norm(v)


class _TensealDot:
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


STEPS = ("encrypt_zero", "mask", "multiply_relinearize", "conjugate", "serialise")


def _step_timers(matcher: vc.CkksMatcherCipher, template: bytes, probe: bytes) -> dict[str, Any]:
    """The SEAL operations a compare is made of, each timed alone on the matcher's own objects (private
    names: what a compare costs is the sum of these, and no public API splits it up)."""
    evaluator, stored, fresh = matcher._evaluator, matcher._open(template), matcher._open(probe)
    out = sealapi.Ciphertext(matcher._seal)

    def multiply_relinearize() -> None:
        evaluator.multiply(stored, fresh, out)
        evaluator.relinearize_inplace(out, matcher._relin_keys)

    return {
        "encrypt_zero": lambda: matcher._encryptor.encrypt_zero(matcher._parms_id, out),
        "mask": lambda: matcher._mask(2.0**58),
        "multiply_relinearize": multiply_relinearize,
        "conjugate": lambda: evaluator.complex_conjugate(fresh, matcher._conjugation_keys, out),
        "serialise": lambda: matcher._files.ciphertext_bytes(fresh),
    }


def bench_preset(preset: str, runs: int, pairs: int, baseline: _TensealDot | None, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    keys = vc.key_ceremony(preset, model_id=MODEL, dimension=DIMENSION)
    client = vc.CkksClientCipher(keys.public, model_id=MODEL, dimension=DIMENSION)
    matcher = vc.CkksMatcherCipher(keys.evaluation, model_id=MODEL, dimension=DIMENSION)
    authority = vc.CkksAuthorityCipher(keys.secret)

    stages = ("encrypt", "compare", "compare_unstocked", "decide", "tenseal_dot", *STEPS)
    times: dict[str, list[float]] = {stage: [] for stage in stages}
    template_vector, probe_vector = _unit(rng), _unit(rng)
    template = client.encrypt(template_vector)
    tenseal_template = baseline.encrypt(template_vector) if baseline else b""
    tenseal_probe = baseline.encrypt(probe_vector) if baseline else b""
    blinded = b""
    steps = _step_timers(matcher, template, client.encrypt(probe_vector))
    for _ in range(runs):
        for name in STEPS:
            times[name].append(timed(steps[name])[1])
        probe, ms = timed(lambda: client.encrypt(probe_vector))
        times["encrypt"].append(ms)
        # Unstocked: the compare makes its masks and encryptions of zero itself. Stocked: they were made
        # beforehand, as a matcher worker does between requests (a verification uses two).
        times["compare_unstocked"].append(timed(lambda probe=probe: matcher.compare(template, probe, 0.3))[1])
        matcher.replenish(1)
        blinded, ms = timed(lambda probe=probe: matcher.compare(template, probe, 0.3))
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
        a, b = _unit(rng), _unit(rng)
        mix = rng.uniform(-1, 1)
        b = mix * a + np.sqrt(1 - mix**2) * b
        b /= np.linalg.norm(b)
        r = 1 + i % 1024
        _, values = authority.blinded_values(
            matcher.compare(client.encrypt(a), client.encrypt(b), 0.0, blinding=[1, 1, r])
        )
        errors.append(abs(values[2] / r - float(a @ b)))

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


def tenseal_dot_error(baseline: _TensealDot, pairs: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    worst = 0.0
    for _ in range(pairs):
        a, b = _unit(rng), _unit(rng)
        worst = max(worst, abs(baseline.score(baseline.compare(baseline.encrypt(a), baseline.encrypt(b))) - a @ b))
    return float(worst)


def run(runs: int, pairs: int, presets: list[str]) -> dict[str, Any]:
    baseline = _TensealDot()
    results = [bench_preset(p, runs, pairs, baseline, seed=i) for i, p in enumerate(presets)]
    return {
        "machine": machine(),
        "presets": results,
        "tenseal_dot": {
            "parameters": "N=8192 [60,40,60] Delta=2^40",
            "max_abs_score_error": tenseal_dot_error(baseline, min(pairs, 200), seed=99),
        },
    }


def markdown(report: dict[str, Any]) -> str:
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
    steps = markdown_table(
        ["preset", *(f"{name} ms" for name in STEPS)],
        [[r["preset"], *(f"{r['ms'][name]['p50']:.3f}" for name in STEPS)] for r in report["presets"]],
    )
    tenseal = report["tenseal_dot"]
    return (
        f"{table}\n\nTenSEAL .dot ({tenseal['parameters']}) max error: {tenseal['max_abs_score_error']:.2e}\n\n"
        "What a compare is made of, p50 of each SEAL step alone (a verification: 2 encryptions of zero and masks, "
        f"2 multiply + relinearise, 2 conjugations, 2 serialisations, plus plaintext products and adds):\n\n{steps}\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100, help="timed rounds per preset")
    parser.add_argument("--pairs", type=int, default=1000, help="random pairs for the max score error")
    parser.add_argument("--preset", action="append", choices=sorted(vc.PRESETS), help="repeatable; default all")
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    report = run(args.runs, args.pairs, args.preset or list(vc.PRESETS))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    sys.stdout.write(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
