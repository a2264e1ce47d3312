"""Crafted probes against real services, as a modified client would send them (issue 15).

``veilface bench crafted --pairs CSV --root DIR`` (``veilface.cli.bench``) runs ``run_crafted`` and prints
``markdown`` of its report.

Every distinct image of the pairs CSV (``image_a,image_b,same``) is embedded once with dlib; images joined
by a genuine pair are one person, every other image its own. Fresh keys, then a real matcher and authority
on loopback (``veilface.bench.harness.deployment``, its budgets raised far above this run's traffic, so that
no refusal here is a budget's), every face enrolled as its own subject under an honest encryption. Then,
each try one verification over HTTP through the stock ``Client`` (signature, nonce and probe hash checked):

- ``scaled-wrap``, ``padding-wrap``, ``imaginary-wrap``: an enrolled subject, another person's face crafted
  by ``veilface.bench.harness.attacks`` from the public bundle alone (the wrap of the norm modulo q);
- ``wolf-template``: a crafted template of the attacker's face (padding energy or a wrapping scale, in
  turn), then other people's honest probes against it; a template refused at enrolment counts all its
  would-be tries as refused;
- ``replay``: a genuine probe that matched, sent again byte for byte with a fresh nonce;
- limits (attacks the design does not close): ``rerandomised-replay``, the captured probe plus a fresh
  public-key encryption of zero; ``mean-face-wolf``, an honest template of the normalised mean of other
  people's embeddings, against their honest probes;
- ``honest``: the pairs replicated, a fresh encryption of image_b against image_a's subject per try; a
  decision changed is a signed bit that differs from cosine > threshold in plaintext.
"""

from __future__ import annotations

import itertools
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import numpy as np

import veilface.crypto as vc
from veilface.bench._stats import Progress, Report, machine, markdown_table, quiet
from veilface.bench.harness.attacks import PROBE_ATTACKS, WOLF_ATTACKS, Attacker
from veilface.bench.harness.deployment import BUDGET, Deployment, deployment
from veilface.client.api import Client
from veilface.client.calibration import Pair, read_pairs
from veilface.client.faces import embed_single, load_embedder
from veilface.server.keystore import SIGNING_PUB_FILE

BACKEND = "dlib"
WRAP_ATTACKS = ("scaled-wrap", "padding-wrap", "imaginary-wrap")
PROBES_PER_TEMPLATE = 10  # other faces' probes against one wolf template
MATCH, NO_MATCH, REFUSED = "match", "no-match", "refused"
REFUSALS = (409, 422)  # replayed probe; probe or template not normalised

Send = Callable[[Client], str]


def _outcome(call: Callable[[], vc.DecisionRecord]) -> str:
    try:
        record = call()
    except vc.ServiceError as exc:
        if exc.status in REFUSALS:
            return REFUSED
        raise
    return MATCH if record.match else NO_MATCH


def _tally(name: str, outcomes: Sequence[str]) -> dict[str, Any]:
    return {
        "name": name,
        "tries": len(outcomes),
        "matches": outcomes.count(MATCH),
        "refused": outcomes.count(REFUSED),
    }


class _Clients:
    """One stock ``Client`` per thread (each with its own cipher), and a pool of threads to send with."""

    def __init__(self, deployed: Deployment, state_dir: Path, threads: int) -> None:
        self._deployed, self._state_dir, self.threads = deployed, state_dir, threads
        self._local = threading.local()
        self._lock = threading.Lock()
        self._stack = ExitStack()

    def get(self) -> Client:
        client = getattr(self._local, "client", None)
        if client is None:
            deployed = self._deployed
            client = Client(
                deployed.matcher.url,
                token=deployed.operator_token,
                authority_key=deployed.keys_dir / vc.Role.PUBLIC.value / SIGNING_PUB_FILE,
                state_dir=self._state_dir,
            )
            with self._lock:
                self._stack.enter_context(client)
            self._local.client = client
        return client

    def run(self, label: str, sends: Sequence[Send], progress: Progress) -> list[str]:
        """Each send with a thread's client; outcomes in the order of ``sends``."""
        outcomes: list[str] = []
        with ThreadPoolExecutor(self.threads) as pool:
            for outcome in pool.map(self._send, sends):
                outcomes.append(outcome)
                progress(label, len(outcomes), len(sends))
        return outcomes

    def _send(self, send: Send) -> str:
        return send(self.get())

    def close(self) -> None:
        self._stack.close()


@contextmanager
def _clients(deployed: Deployment, state_dir: Path, threads: int) -> Iterator[_Clients]:
    clients = _Clients(deployed, state_dir, threads)
    try:
        yield clients
    finally:
        clients.close()


def _people(images: Sequence[Path], pairs: Sequence[Pair]) -> dict[Path, int]:
    """Images joined by genuine pairs as one person (union-find); person numbers from 0."""
    parent = {image: image for image in images}

    def find(image: Path) -> Path:
        while parent[image] != image:
            parent[image] = parent[parent[image]]
            image = parent[image]
        return image

    for pair in pairs:
        if pair.same and pair.image_a in parent and pair.image_b in parent:
            parent[find(pair.image_a)] = find(pair.image_b)
    roots = list(dict.fromkeys(find(image) for image in images))
    return {image: roots.index(find(image)) for image in images}


def _verify(subject: str, probe: bytes) -> Send:
    return lambda client: _outcome(lambda: client.verify_ciphertext(subject, probe))


def _verify_fresh(subject: str, embedding: np.ndarray) -> Send:
    return lambda client: _outcome(lambda: client.verify_embedding(subject, embedding))


def run_crafted(
    pairs_path: Path,
    *,
    root: Path | None = None,
    tries: int = 100,
    honest_tries: int = 10_000,
    clients: int = 4,
    workers: int = 2,
    seed: int | None = None,
    progress: Progress = quiet,
) -> Report:
    """The attacks (``tries`` each) and ``honest_tries`` honest verifications against fresh services."""
    started = time.perf_counter()
    pairs = read_pairs(pairs_path, root)
    base = root if root is not None else pairs_path.parent
    embedder = load_embedder(BACKEND)
    threshold = embedder.default_threshold
    images = list(dict.fromkeys(path for pair in pairs for path in (pair.image_a, pair.image_b)))
    embeddings: dict[Path, np.ndarray] = {}
    failed = 0
    for index, image in enumerate(images):
        progress("embedding images", index + 1, len(images))
        try:
            embeddings[image] = embed_single(embedder, image)
        except (vc.ImageError, vc.FaceError):
            failed += 1
    faces = list(embeddings)
    person = _people(faces, pairs)
    scored = [pair for pair in pairs if pair.image_a in embeddings and pair.image_b in embeddings]
    if len(set(person.values())) < 2 or not scored:
        raise vc.VeilfaceError(
            f"need faces of at least two people and a usable pair; {len(faces)} of {len(images)} images yield "
            f"a face, {len(scored)} of {len(pairs)} pairs are usable"
        )
    rng = np.random.default_rng(seed)
    subject = {image: f"face-{number}" for number, image in enumerate(faces)}

    def others(image: Path) -> list[Path]:
        return [face for face in faces if person[face] != person[image]]

    def impostor() -> tuple[Path, Path]:
        """An enrolled target and another person's face (the attacker's own)."""
        while True:
            target, attacker = (faces[i] for i in rng.choice(len(faces), size=2))
            if person[target] != person[attacker]:
                return target, attacker

    keyset = vc.key_ceremony(vc.DEFAULT_PRESET, model_id=embedder.model_id, dimension=embedder.dimension)
    attacker = Attacker(keyset.public, embedder.model_id, embedder.dimension)
    attacks: list[dict[str, Any]] = []
    limits: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="veilface-bench-") as scratch:
        with (
            deployment(Path(scratch), keyset=keyset, threshold=threshold, workers=workers) as deployed,
            _clients(deployed, Path(scratch) / "client-state", clients) as pool,
        ):
            enrol = pool.get()
            for number, image in enumerate(faces):
                progress("enrolling faces", number + 1, len(faces))
                enrol.enroll_embedding(subject[image], embeddings[image])

            for name in WRAP_ATTACKS:
                sends = []
                for _ in range(tries):
                    target, own = impostor()
                    probe = attacker.encrypt(PROBE_ATTACKS[name](attacker, embeddings[own], rng))
                    sends.append(_verify(subject[target], probe))
                attacks.append(_tally(name, pool.run(name, sends, progress)))

            attacks.append(
                _tally("wolf-template", _wolves(pool, attacker, faces, embeddings, others, tries, rng, progress))
            )

            replay, rerandomised = _replays(pool, attacker, scored, embeddings, subject, threshold, tries, progress)
            attacks.append(_tally("replay", replay))
            limits.append(_tally("rerandomised-replay", rerandomised))
            limits.append(
                _tally("mean-face-wolf", _mean_faces(pool, faces, embeddings, person, others, tries, progress))
            )

            honest_pairs = [scored[index % len(scored)] for index in range(honest_tries)]
            honest = pool.run(
                "honest probes",
                [_verify_fresh(subject[pair.image_a], embeddings[pair.image_b]) for pair in honest_pairs],
                progress,
            )
    attacker.close()
    plaintext = [float(embeddings[pair.image_a] @ embeddings[pair.image_b]) > threshold for pair in honest_pairs]
    changed = sum(
        outcome != REFUSED and (outcome == MATCH) != expected
        for outcome, expected in zip(honest, plaintext, strict=True)
    )
    return {
        "benchmark": "crafted",
        "machine": machine(),
        "backend": BACKEND,
        "model_id": embedder.model_id,
        "preset": vc.DEFAULT_PRESET,
        "threshold": threshold,
        "pairs": len(pairs),
        "usable_pairs": len(scored),
        "faces": len(faces),
        "people": len(set(person.values())),
        "failed_to_acquire": failed,
        "images_root": str(base),
        "budgets": BUDGET,
        "clients": clients,
        "workers": workers,
        "attacks": attacks,
        "limits": limits,
        "honest": {"tries": len(honest), "refused": honest.count(REFUSED), "decisions_changed": changed},
        "seconds": round(time.perf_counter() - started, 1),
    }


def _wolves(
    pool: _Clients,
    attacker: Attacker,
    faces: Sequence[Path],
    embeddings: dict[Path, np.ndarray],
    others: Callable[[Path], list[Path]],
    tries: int,
    rng: np.random.Generator,
    progress: Progress,
) -> list[str]:
    """Crafted templates of attackers' faces, each against up to ``PROBES_PER_TEMPLATE`` other faces."""
    outcomes: list[str] = []
    kinds = list(WOLF_ATTACKS.values())
    enrol = pool.get()
    for number in itertools.count():
        if len(outcomes) >= tries:
            break
        own = faces[int(rng.integers(len(faces)))]
        victims = others(own)
        chosen = rng.choice(len(victims), size=min(PROBES_PER_TEMPLATE, len(victims), tries - len(outcomes)))
        template = attacker.encrypt(kinds[number % len(kinds)](attacker, embeddings[own], rng))
        wolf = f"wolf-{number}"
        try:
            enrol.enroll_ciphertext(wolf, template)
        except vc.ServiceError as exc:
            if exc.status not in REFUSALS:
                raise
            outcomes += [REFUSED] * len(chosen)
            continue
        outcomes += pool.run(
            "wolf templates", [_verify_fresh(wolf, embeddings[victims[index]]) for index in chosen], progress
        )
    return outcomes


def _replays(
    pool: _Clients,
    attacker: Attacker,
    scored: Sequence[Pair],
    embeddings: dict[Path, np.ndarray],
    subject: dict[Path, str],
    threshold: float,
    tries: int,
    progress: Progress,
) -> tuple[list[str], list[str]]:
    """Genuine probes that matched, captured: each sent again byte for byte, and re-randomised."""
    genuine = [pair for pair in scored if float(embeddings[pair.image_a] @ embeddings[pair.image_b]) > threshold]
    # Without a genuine pair above the threshold, a face's own image is its genuine probe.
    sources = [(pair.image_a, pair.image_b) for pair in genuine] or [(pair.image_a, pair.image_a) for pair in scored]
    client = pool.get()
    cipher = client.cipher()
    captured: list[tuple[str, bytes]] = []
    attempts = 0
    while len(captured) < tries:
        target, face = sources[attempts % len(sources)]
        attempts += 1
        probe = cipher.encrypt(embeddings[face])
        if _verify(subject[target], probe)(client) == MATCH:
            captured.append((subject[target], probe))
        elif attempts > 10 * tries + len(sources):
            raise vc.VeilfaceError("no genuine probe matched: nothing to replay")
        progress("capturing genuine probes", len(captured), tries)
    replay = pool.run("replay", [_verify(target, probe) for target, probe in captured], progress)
    rerandomised = [_verify(target, attacker.rerandomised(probe)) for target, probe in captured]
    return replay, pool.run("rerandomised replay", rerandomised, progress)


def _mean_faces(
    pool: _Clients,
    faces: Sequence[Path],
    embeddings: dict[Path, np.ndarray],
    person: dict[Path, int],
    others: Callable[[Path], list[Path]],
    tries: int,
    progress: Progress,
) -> list[str]:
    """Honest templates of the normalised mean of other people's faces, against those people's probes."""
    outcomes: list[str] = []
    enrol = pool.get()
    owners = list({person[face]: face for face in faces}.values())
    for number in itertools.count():
        if len(outcomes) >= tries:
            break
        own = owners[number % len(owners)]
        victims = others(own)
        mean = np.mean([embeddings[face] for face in victims], axis=0)
        wolf = f"mean-face-{number}"
        enrol.enroll_embedding(wolf, mean / np.linalg.norm(mean))
        start = (number * PROBES_PER_TEMPLATE) % len(victims)
        count = min(PROBES_PER_TEMPLATE, len(victims), tries - len(outcomes))
        chosen = [victims[(start + index) % len(victims)] for index in range(count)]
        outcomes += pool.run("mean-face wolves", [_verify_fresh(wolf, embeddings[face]) for face in chosen], progress)
    return outcomes


def _rate(row: dict[str, Any], key: str) -> str:
    return f"{row[key]} ({100.0 * row[key] / row['tries']:.1f}%)" if row["tries"] else "0"


def markdown(report: Report) -> str:
    headers = ["attack", "tries", "matches", "refused"]

    def rows(items: Sequence[dict[str, Any]]) -> list[list[Any]]:
        return [[item["name"], item["tries"], _rate(item, "matches"), _rate(item, "refused")] for item in items]

    honest = report["honest"]
    lines = [
        f"Crafted probes against real services ({report['backend']} {report['model_id']}, "
        f"{report['preset']}, threshold {report['threshold']}): {report['faces']} faces of {report['people']} "
        f"people from {report['usable_pairs']} usable pairs ({report['failed_to_acquire']} images without a face), "
        f"{report['clients']} client threads, {report['workers']} matcher workers, {report['seconds']} s. "
        f"Budgets raised to {report['budgets']:,} so that no refusal here is a budget's.",
        "",
        "Attacks (targets: at most 1% of tries match; replay 0%):",
        "",
        markdown_table(headers, rows(report["attacks"])),
        "",
        "Limits (not closed by the design; proofs of well-formed encryption or attested clients would be):",
        "",
        markdown_table(headers, rows(report["limits"])),
        "",
        f"Honest probes: {honest['tries']} tries, {honest['refused']} refused, {honest['decisions_changed']} "
        "decisions changed (signed bit vs cosine > threshold in plaintext).",
    ]
    return "\n".join(lines) + "\n"
