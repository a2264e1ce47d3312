"""Accuracy of the plaintext and the encrypted pipelines on the same labelled pairs (ISO/IEC 19795-1 terms).

``veilface bench accuracy PAIRS`` (``veilface.cli.bench``) runs ``run_accuracy`` and prints ``markdown``.

PAIRS is a CSV (``image_a,image_b,same``) or LFW's ``pairs.txt``. Every distinct image is embedded once
under the enrolment face policy (an image that fails it is a failure to acquire; its pairs are skipped)
and encrypted once (the services get a fresh encryption per verification). Then, for every pair, image_a
as the template and image_b as the probe:

- plaintext: the cosine of the two embeddings; a match when it is above the threshold;
- encrypted: the real crypto code with a local key: the matcher's compare, then the authority's decision.
  In this benchmark only, the blinding factors are drawn here (as the matcher draws them) and kept, so
  the decrypted value r * (s - t) gives back the score s;
- services: the same embeddings through real matcher and authority processes (image_a's ciphertext
  enrolled, image_b encrypted afresh for each verification, since the matcher answers a probe's bytes
  once), and the signed bit they answer.

Figures per pipeline: FMR and FNMR at the threshold (from the decisions), EER, FNMR at FMR = 1e-2 and
1e-3 (from the scores; thresholds chosen on these impostor scores), decision agreement with the plaintext
pipeline and the largest score difference; a DET curve of both pipelines in ``--plot``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import veilface.crypto as vc
from veilface.bench._stats import Progress, Report, machine, markdown_table, quiet
from veilface.bench.harness.deployment import pipelines
from veilface.client.calibration import Pair, eer, error_rates, fnmr_at_fmr, read_pairs, threshold_at_fmr
from veilface.client.faces import embed_single, load_embedder

# The matcher's own recipe for blinding factors, called here so that the benchmark knows them.
from veilface.crypto.testing import blinded_values, blinding_factor, checks_for, compare_with_factors

FMR_TARGETS = {"1e-2": 1e-2, "1e-3": 1e-3}


def figures(genuine: Sequence[float], impostor: Sequence[float], fmr: float, fnmr: float) -> dict[str, float]:
    """ISO/IEC 19795-1 figures: the decisions' FMR and FNMR, then EER and FNMR at fixed FMRs from scores."""
    result = {"fmr": fmr, "fnmr": fnmr, "eer": eer(genuine, impostor)}
    for name, target in FMR_TARGETS.items():
        result[f"fnmr_at_fmr_{name}"] = fnmr_at_fmr(genuine, impostor, target)
        result[f"threshold_at_fmr_{name}"] = threshold_at_fmr(impostor, target)
    return {name: round(float(value), 6) for name, value in result.items()}


def decision_rates(decisions: Sequence[bool], same: Sequence[bool]) -> tuple[float, float]:
    """(FMR, FNMR) of match decisions: impostor pairs decided as matches, genuine pairs decided as not."""
    impostor = [decided for decided, is_same in zip(decisions, same, strict=True) if not is_same]
    genuine = [decided for decided, is_same in zip(decisions, same, strict=True) if is_same]
    return float(np.mean(impostor)), 1.0 - float(np.mean(genuine))


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def run_accuracy(
    pairs_path: Path,
    *,
    backend: str,
    preset: str,
    root: Path | None = None,
    threshold: float | None = None,
    model: Path | None = None,
    progress: Progress = quiet,
) -> Report:
    """Every pair of ``pairs_path`` (images under ``root``, default its folder) through both pipelines and the
    services; ``threshold`` defaults to the backend's."""
    pairs: list[Pair] = read_pairs(pairs_path, root)
    base = root if root is not None else pairs_path.parent
    embedder = load_embedder(backend, model_path=model)
    threshold = embedder.default_threshold if threshold is None else threshold
    images = list(dict.fromkeys(path for pair in pairs for path in (pair.image_a, pair.image_b)))
    embeddings: dict[Path, np.ndarray] = {}
    failures: list[dict[str, str]] = []
    for index, image in enumerate(images):
        progress("embedding images", index + 1, len(images))
        try:
            embeddings[image] = embed_single(embedder, image)
        except (vc.ImageError, vc.FaceError) as exc:
            failures.append({"image": _relative(image, base), "reason": exc.message})
    scored = [pair for pair in pairs if pair.image_a in embeddings and pair.image_b in embeddings]
    if not any(pair.same for pair in scored) or all(pair.same for pair in scored):
        raise vc.VeilfaceError(
            f"need genuine and impostor pairs whose images both yield a face; {len(scored)} of {len(pairs)} "
            f"pairs are usable ({len(failures)} of {len(images)} images failed)"
        )

    checks = checks_for(vc.Purpose.VERIFY, threshold)
    records: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="veilface-bench-") as services_root:
        with pipelines(
            Path(services_root),
            preset=preset,
            model_id=embedder.model_id,
            dimension=embedder.dimension,
            threshold=threshold,
            names=("encrypted",),
        ) as deployed:
            # The local ciphers use the deployment's keys, so the services accept the same ciphertexts.
            keyset, pipeline = deployed.keyset, deployed.pipelines["encrypted"]
            matcher = vc.CkksMatcherCipher(keyset.evaluation, model_id=embedder.model_id, dimension=embedder.dimension)
            authority = vc.CkksAuthorityCipher(keyset.secret)
            ciphertexts = {image: pipeline.client_cipher.encrypt(vector) for image, vector in embeddings.items()}
            service = pipeline.client
            subjects = {image: f"image-{number}" for number, image in enumerate(embeddings)}
            for number, (image, subject) in enumerate(subjects.items()):
                progress("enrolling images", number + 1, len(subjects))
                service.enroll_ciphertext(subject, ciphertexts[image])
            for number, pair in enumerate(scored):
                progress("comparing pairs", number + 1, len(scored))
                template, probe = ciphertexts[pair.image_a], ciphertexts[pair.image_b]
                blinding = [blinding_factor(limit) for _, _, limit in checks]
                blinded = compare_with_factors(matcher, template, probe, threshold, blinding)
                _, values = blinded_values(authority, blinded)
                _, outcome = authority.decide(blinded)
                plaintext_score = float(embeddings[pair.image_a] @ embeddings[pair.image_b])
                records.append(
                    {
                        "image_a": _relative(pair.image_a, base),
                        "image_b": _relative(pair.image_b, base),
                        "same": pair.same,
                        "plaintext_score": round(plaintext_score, 8),
                        "encrypted_score": round(values[-1] / blinding[-1] + threshold, 8),
                        "plaintext_match": plaintext_score > threshold,
                        "encrypted_match": outcome is vc.Outcome.MATCH,
                        "encrypted_outcome": outcome.value,
                        "service_match": service.verify_ciphertext(
                            subjects[pair.image_a], pipeline.client_cipher.encrypt(embeddings[pair.image_b])
                        ).match,
                    }
                )
    report: Report = {
        "benchmark": "accuracy",
        "machine": machine(),
        "pairs_file": str(pairs_path),
        "backend": backend,
        "model_id": embedder.model_id,
        "preset": preset,
        "threshold": threshold,
        "pairs": len(pairs),
        "images": len(images),
        "failed_to_acquire": len(failures),
        "acquisition_failures": failures,
        "skipped_pairs": len(pairs) - len(scored),
    }
    return report | summarise(records, threshold)


def summarise(records: list[dict[str, Any]], threshold: float) -> dict[str, Any]:
    """Error rates of both pipelines, their agreement and score difference, from the per-pair records."""
    same = [bool(record["same"]) for record in records]
    decisions = {name: [record[f"{name}_match"] for record in records] for name in ("encrypted", "service")}
    scores: dict[str, tuple[list[float], list[float]]] = {}
    for name in ("plaintext", "encrypted"):
        values = [record[f"{name}_score"] for record in records]
        scores[name] = (
            [score for score, is_same in zip(values, same, strict=True) if is_same],
            [score for score, is_same in zip(values, same, strict=True) if not is_same],
        )
    plaintext_decisions = [record["plaintext_match"] for record in records]

    def agreement(name: str) -> float:
        return round(float(np.mean([a == b for a, b in zip(decisions[name], plaintext_decisions, strict=True)])), 6)

    service_fmr, service_fnmr = decision_rates(decisions["service"], same)
    differences = [abs(record["encrypted_score"] - record["plaintext_score"]) for record in records]
    return {
        "genuine": sum(same),
        "impostor": len(same) - sum(same),
        "fmr_resolution": round(1.0 / (len(same) - sum(same)), 6),
        # The plaintext pipeline decides by its score, which is what error_rates counts.
        "plaintext": figures(*scores["plaintext"], *error_rates(*scores["plaintext"], threshold)),
        "encrypted": figures(*scores["encrypted"], *decision_rates(decisions["encrypted"], same)),
        "services": {"fmr": round(service_fmr, 6), "fnmr": round(service_fnmr, 6)},
        "decision_agreement": agreement("encrypted"),
        "service_decision_agreement": agreement("service"),
        "max_abs_score_diff": float(max(differences)),
        "pair_results": records,
    }


def _det(genuine: np.ndarray, impostor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FMR, FNMR) at every observed score as threshold, plus one below all (everything matches)."""
    thresholds = np.concatenate([[-np.inf], np.unique(np.concatenate([genuine, impostor]))])
    fmr = np.array([np.mean(impostor > t) for t in thresholds])
    fnmr = np.array([np.mean(genuine <= t) for t in thresholds])
    return fmr, fnmr


def plot(report: Report, path: Path) -> None:
    """DET curves (log axes) of both pipelines, beside the score distributions and the threshold.

    A rate of 0 cannot sit on a log axis: it is drawn at half the smallest non-zero rate these pairs can
    measure (dotted lines).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = report["pair_results"]
    same = np.array([record["same"] for record in records])
    fmr_floor, fnmr_floor = 0.5 / report["impostor"], 0.5 / report["genuine"]
    figure, (det, spread) = plt.subplots(1, 2, figsize=(12, 5.5))
    styles = {"plaintext": ("C0", "-", 3.0), "encrypted": ("C3", "--", 1.5)}
    for name, (colour, line, width) in styles.items():
        scores = np.array([record[f"{name}_score"] for record in records])
        fmr, fnmr = _det(scores[same], scores[~same])
        det.step(
            np.maximum(fmr, fmr_floor),
            np.maximum(fnmr, fnmr_floor),
            where="post",
            color=colour,
            linestyle=line,
            linewidth=width,
            label=f"{name} (EER {report[name]['eer']:.3f})",
        )
        det.plot(
            max(report[name]["fmr"], fmr_floor),
            max(report[name]["fnmr"], fnmr_floor),
            "o",
            color=colour,
            markerfacecolor="none" if name == "encrypted" else colour,
            markersize=9,
        )
    det.set_xscale("log")
    det.set_yscale("log")
    det.set_xlim(fmr_floor / 1.5, 1.05)
    det.set_ylim(fnmr_floor / 1.5, 1.05)
    det.axvline(fmr_floor, color="grey", linewidth=0.8, linestyle=":")
    det.axhline(fnmr_floor, color="grey", linewidth=0.8, linestyle=":")
    det.set_xlabel("false match rate (FMR)")
    det.set_ylabel("false non-match rate (FNMR)")
    det.set_title(f"DET, {report['model_id']} (circles: threshold {report['threshold']})", fontsize="medium")
    det.legend(loc="upper right")
    det.grid(True, which="both", alpha=0.3)

    plain = np.array([record["plaintext_score"] for record in records])
    bins = np.linspace(min(plain.min(), report["threshold"]) - 0.02, 1.0, 40)
    spread.hist(plain[~same], bins=bins, color="C1", alpha=0.7, label=f"impostor ({report['impostor']})")
    spread.hist(plain[same], bins=bins, color="C2", alpha=0.7, label=f"genuine ({report['genuine']})")
    spread.axvline(report["threshold"], color="black", linestyle="--", label=f"threshold {report['threshold']}")
    spread.set_xlabel(f"cosine score (plaintext; encrypted differs by at most {report['max_abs_score_diff']:.1e})")
    spread.set_ylabel("pairs")
    spread.set_title("Score distributions", fontsize="medium")
    spread.legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def markdown(report: Report) -> str:
    names = ("fmr", "fnmr", "eer", "fnmr_at_fmr_1e-2", "fnmr_at_fmr_1e-3")
    rows = [[pipeline, *(f"{report[pipeline][name]:.4f}" for name in names)] for pipeline in ("plaintext", "encrypted")]
    lines = [
        f"Accuracy on {report['pairs']} pairs ({report['genuine']} genuine, {report['impostor']} impostor scored; "
        f"{report['failed_to_acquire']} of {report['images']} images failed to acquire, {report['skipped_pairs']} "
        f"pairs skipped); {report['backend']} ({report['model_id']}), threshold {report['threshold']}, "
        f"preset {report['preset']}.",
        "",
        markdown_table(["pipeline", *names], rows),
        "",
        f"Decision agreement (encrypted vs plaintext): {report['decision_agreement']:.4f}; through the services "
        f"(signed bits): {report['service_decision_agreement']:.4f}; max |score difference| "
        f"{report['max_abs_score_diff']:.2e}.",
        f"FMR resolution with these impostor pairs: {report['fmr_resolution']:.2e} (FNMR at a smaller FMR uses "
        "the highest impostor score as the threshold).",
    ]
    lines += [f"failed to acquire {item['image']}: {item['reason']}" for item in report["acquisition_failures"]]
    return "\n".join(lines) + "\n"
