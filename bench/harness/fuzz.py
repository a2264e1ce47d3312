"""Fuzz targets for the reliability benchmark and tests: every parser under hypothesis, both services' HTTP
APIs under schemathesis.

Parsers get random bytes and values, and mutations of real inputs made under real keys (a CKKS template,
a probe, blinded results, key bundles and files, a signed description and decision record, the authority's
answers, a matcher's answers to the client, images), so that the inputs pass the first checks and reach the
deeper ones. Each may raise only its documented exception type. The HTTP fuzzing sends, with valid tokens,
positive and negative cases from each operation's OpenAPI description and cases carrying real ciphertexts
or mutations of them; no answer may have a 5xx status.

hypothesis and schemathesis are development dependencies, imported only when fuzzing runs.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import tempfile
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np

import veilface.crypto as vc
from veilface.bench.harness.deployment import DIMENSION, MODEL_ID, THRESHOLD, Deployment, bearer
from veilface.bench.harness.faults import GENUINE_NOISE, TemplatePool
from veilface.protocol import PublicKeysAnswer
from veilface.protocol import headers as wire
from veilface.server.keystore import write_keyset
from veilface.server.settings import sqlite_url

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy


# -- fuzzing: parsers -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParserTarget:
    """A parser, the inputs to throw at it, and the only exceptions it may raise on them."""

    name: str
    strategy: SearchStrategy[Any]
    parse: Callable[[Any], object]
    allowed: tuple[type[BaseException], ...]


@dataclass(frozen=True)
class Edit:
    kind: str  # "set", "insert", "cut" or "truncate"
    at: int
    data: bytes
    length: int


def _apply(seed: bytes, edits: list[Edit]) -> bytes:
    data = bytearray(seed)
    for edit in edits:
        at = min(edit.at, len(data))
        if edit.kind == "set":
            data[at : at + len(edit.data)] = edit.data
        elif edit.kind == "insert":
            data[at:at] = edit.data
        elif edit.kind == "cut":
            del data[at : at + edit.length]
        else:
            del data[at:]
    return bytes(data)


def unprinted(values: list[bytes]) -> SearchStrategy[bytes]:
    """One of ``values``, drawn by index so that hypothesis never renders the (large) bytes in its reports."""
    from hypothesis import strategies as st

    return st.integers(0, len(values) - 1).map(lambda index: values[index])


def mutations(seed: bytes, *, hot: int = 320, max_edits: int = 4) -> SearchStrategy[bytes]:
    """``seed`` with a few overwrites, insertions, cuts or a truncation; half the edits land in its first
    ``hot`` bytes, where envelopes and SEAL keep their headers and parsers make their decisions."""
    from hypothesis import strategies as st

    position = st.one_of(st.integers(0, min(hot, len(seed))), st.integers(0, len(seed)))
    edit = st.builds(
        Edit,
        kind=st.sampled_from(["set", "set", "insert", "cut", "truncate"]),
        at=position,
        data=st.binary(min_size=1, max_size=8),
        length=st.integers(1, 64),
    )
    return st.lists(edit, min_size=1, max_size=max_edits).map(lambda edits: _apply(seed, edits))


def json_values() -> SearchStrategy[Any]:
    """Anything json.loads can return, NaN and infinities included (Python's json reads them); values that
    confuse types and conversions are drawn as often as random scalars and nested containers."""
    from hypothesis import strategies as st

    edges = st.sampled_from(
        [
            float("nan"),
            float("inf"),
            float("-inf"),
            1e308,
            -1,
            0,
            2**63,
            2**64,
            True,
            False,
            "",
            "\x00",
            "\ud800",
            [],
            {},
        ]
    )
    scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=40))
    nested = st.recursive(
        scalars,
        lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=20), inner, max_size=4)),
        max_leaves=12,
    )
    return st.one_of(edges, scalars, nested)


def altered(original: dict[str, Any]) -> SearchStrategy[dict[str, Any]]:
    """``original`` with some fields replaced by other JSON values, some removed, some added."""
    from hypothesis import strategies as st

    names = sorted(original)
    return st.tuples(
        st.dictionaries(st.sampled_from(names), json_values(), max_size=3),
        st.sets(st.sampled_from(names), max_size=2),
        st.dictionaries(st.text(max_size=12), json_values(), max_size=2),
    ).map(
        lambda parts: {
            **{k: v for k, v in original.items() if k not in parts[1]},
            **parts[0],
            **parts[2],
        }
    )


def reheadered(envelope: bytes, kind: vc.EnvelopeKind) -> SearchStrategy[bytes]:
    """A valid envelope's payload under an altered header."""
    parsed = vc.Envelope.from_bytes(envelope, kind=kind)
    return altered(parsed.header).map(lambda header: vc.Envelope(kind, header, parsed.payload).to_bytes())


def sample_images() -> list[bytes]:
    """One tiny image in each format Pillow writes here: the seeds for image mutations."""
    from PIL import Image

    rgb = Image.new("RGB", (12, 9), (200, 120, 40))
    images = []
    for image, fmt in (
        (rgb, "PNG"),
        (rgb, "JPEG"),
        (rgb, "GIF"),
        (rgb, "BMP"),
        (rgb, "TIFF"),
        (rgb, "WEBP"),
        (rgb.convert("RGBA"), "PNG"),
        (rgb.convert("I;16"), "PNG"),
    ):
        buffer = io.BytesIO()
        image.save(buffer, format=fmt)
        images.append(buffer.getvalue())
    return images


def parser_targets(keyset: vc.KeySet, scratch: Path) -> list[ParserTarget]:
    """Every parser of untrusted or on-disk bytes, with real seeds made under ``keyset``."""
    from hypothesis import strategies as st

    from veilface.client.api import Client
    from veilface.client.faces import read_image
    from veilface.server.keystore import read_bundle, read_public_description
    from veilface.server.matcher.authority_client import AuthorityClient
    from veilface.server.problems import Problem

    rng = np.random.default_rng(8)
    client = vc.CkksClientCipher(keyset.public, model_id=MODEL_ID, dimension=DIMENSION)
    matcher = vc.CkksMatcherCipher(keyset.evaluation, model_id=MODEL_ID, dimension=DIMENSION)
    authority = vc.CkksAuthorityCipher(keyset.secret)
    vector = rng.normal(size=DIMENSION)
    template, probe = client.encrypt(vector), client.encrypt(vector + GENUINE_NOISE * rng.normal(size=DIMENSION))
    blinded = [matcher.blind_norm(template), matcher.compare(template, probe, THRESHOLD)]
    plain = vc.PlaintextMatcherCipher(key_id=keyset.key_id, model_id=MODEL_ID, dimension=DIMENSION)
    plain_authority = vc.PlaintextAuthorityCipher(key_id=keyset.key_id)
    plain_template = vc.PlaintextClientCipher(key_id=keyset.key_id, model_id=MODEL_ID, dimension=DIMENSION).encrypt(
        vector
    )
    plain_blinded = plain.compare(plain_template, plain_template, THRESHOLD)
    verify_key = keyset.signing_key.verify_key

    def envelope(data: bytes) -> None:
        for kind in vc.EnvelopeKind:
            vc.Envelope.from_bytes(data, kind=kind)

    def template_bytes(data: bytes) -> None:
        matcher.check(data)
        matcher.blind_norm(data)

    def probe_bytes(data: bytes) -> None:
        matcher.compare(template, data, THRESHOLD)

    def plaintext_bytes(data: bytes) -> None:
        for parse in (plain.check, plain_authority.decide):
            try:
                parse(data)
            except vc.InvalidCiphertextError:
                pass

    def bundle_meta(meta: dict[str, Any]) -> None:
        vc.KeyBundle.from_parts(keyset.public.context, meta, role=vc.Role.PUBLIC)

    def public_context(context: bytes) -> None:
        vc.CkksClientCipher(
            vc.KeyBundle(vc.Role.PUBLIC, keyset.public.preset, keyset.key_id, context),
            model_id=MODEL_ID,
            dimension=DIMENSION,
        )

    def evaluation_keys(parts: tuple[bytes, bytes]) -> None:
        bundle = vc.KeyBundle(
            vc.Role.EVALUATION,
            keyset.evaluation.preset,
            keyset.key_id,
            keyset.evaluation.context,
            relin_keys=parts[0],
            conjugation_keys=parts[1],
        )
        vc.CkksMatcherCipher(bundle, model_id=MODEL_ID, dimension=DIMENSION)

    keys_copy = scratch / "keys"
    if not keys_copy.exists():
        write_keyset(keys_copy, keyset)
    public_meta = keys_copy / vc.Role.PUBLIC.value / "meta.json"
    valid_meta = public_meta.read_bytes()

    def meta_file(data: bytes) -> None:
        public_meta.write_bytes(data)
        try:
            read_bundle(keys_copy, vc.Role.PUBLIC)
            read_public_description(keys_copy)
        finally:
            public_meta.write_bytes(valid_meta)

    def description(data: Any) -> None:
        parsed = vc.PublicDescription.from_dict(data)
        parsed.verify(keyset.signature, verify_key)

    record = vc.sign_decision(
        keyset.signing_key,
        request_id="r" * 32,
        subject_ref="a" * 64,
        match=True,
        key_id=keyset.key_id,
        client_nonce="n" * 24,
        probe_sha256=vc.probe_digest(probe),
    ).with_subject("alice")

    def decision(data: Any) -> None:
        parsed = vc.DecisionRecord.from_dict(data)
        vc.verify_decision(parsed, verify_key, client_nonce="n" * 24, probe_sha256=vc.probe_digest(probe))

    async def ask_authority(answer: tuple[int, dict[str, str], bytes], purpose: vc.Purpose) -> None:
        status, headers, body = answer

        def respond(request: httpx.Request) -> httpx.Response:
            return httpx.Response(status, headers=headers, content=body)

        authority_client = AuthorityClient(
            "http://authority.invalid",
            "t" * 40,
            verify_key=verify_key,
            key_id=keyset.key_id,
            timeout=2.0,
            transport=httpx.MockTransport(respond),
        )
        try:
            assert isinstance(await authority_client.ready(), bool)
            nonce, digest = ("n" * 24, vc.probe_digest(probe)) if purpose is vc.Purpose.VERIFY else (None, None)
            try:
                await authority_client.decide(
                    blinded[purpose is vc.Purpose.VERIFY],
                    purpose=purpose,
                    request_id="r" * 32,
                    subject_ref="a" * 64,
                    token_id="b" * 32,
                    client_nonce=nonce,
                    probe_sha256=digest,
                )
            except Problem as problem:
                # Only the documented relays: replay, budget, bad answer, unavailable.
                assert problem.status in (409, 429, 502, 503), problem.status
        finally:
            await authority_client.aclose()

    def wire_answer(answer: tuple[int, dict[str, str], bytes]) -> None:
        for purpose in vc.Purpose:
            asyncio.run(ask_authority(answer, purpose))

    enrol_answer: dict[str, Any] = {"request_id": "r" * 32, "purpose": "enrol", "outcome": "normalised", "record": None}
    verify_answer: dict[str, Any] = {
        "request_id": "r" * 32,
        "purpose": "verify",
        "outcome": "match",
        "record": record.with_subject("").to_dict(),
    }
    answer_bodies = st.one_of(
        altered(enrol_answer).map(lambda body: json.dumps(body).encode()),
        altered(verify_answer).map(lambda body: json.dumps(body).encode()),
        json_values().map(lambda body: json.dumps(body).encode()),
        mutations(json.dumps(verify_answer).encode(), hot=2000),
        st.binary(max_size=200),
    )
    wire_answers = st.tuples(
        st.sampled_from([200, 200, 200, 400, 401, 403, 404, 409, 422, 429, 500, 502, 503]),
        st.dictionaries(
            st.sampled_from(["Retry-After", "Content-Type"]),
            st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20),
            max_size=2,
        ),
        answer_bodies,
    )

    public_answer = PublicKeysAnswer.of(keyset.public, keyset.description, keyset.signature).model_dump()

    def matcher_answers(bodies: tuple[int, bytes, bytes]) -> None:
        status, keys_body, other_body = bodies

        def respond(request: httpx.Request) -> httpx.Response:
            if request.url.path == "/v1/keys/public":
                return httpx.Response(200, content=keys_body)
            return httpx.Response(status, content=other_body)

        transport = httpx.MockTransport(respond)
        with Client("http://matcher.invalid", token="t" * 32, authority_key=verify_key, transport=transport) as fuzzed:
            for call in (
                fuzzed.deployment,
                lambda: fuzzed.verify_ciphertext("alice", probe),
                lambda: fuzzed.enroll_ciphertext("alice", template),
                lambda: fuzzed.subject("alice"),
            ):
                try:
                    call()
                except vc.VeilfaceError:
                    pass

    valid_keys_body = json.dumps(public_answer).encode()
    keys_bodies = st.one_of(
        unprinted([valid_keys_body]),
        altered(public_answer).map(lambda body: json.dumps(body).encode()),
        st.builds(
            lambda description: json.dumps({**public_answer, "description": description}).encode(),
            altered(keyset.description.to_dict()),
        ),
        json_values().map(lambda body: json.dumps(body).encode()),
    )
    other_bodies = st.one_of(
        altered(record.to_dict()).map(lambda body: json.dumps(body).encode()),
        json_values().map(lambda body: json.dumps(body).encode()),
        st.binary(max_size=100),
    )

    images = sample_images()

    return [
        ParserTarget(
            "envelope",
            st.one_of(st.binary(max_size=512), mutations(template), mutations(blinded[1])),
            envelope,
            (vc.InvalidCiphertextError,),
        ),
        ParserTarget(
            "ckks-template",
            st.one_of(mutations(template), reheadered(template, vc.EnvelopeKind.EMBEDDING)),
            template_bytes,
            (vc.InvalidCiphertextError,),
        ),
        ParserTarget(
            "ckks-probe",
            st.one_of(mutations(probe), reheadered(probe, vc.EnvelopeKind.EMBEDDING)),
            probe_bytes,
            (vc.InvalidCiphertextError,),
        ),
        ParserTarget(
            "blinded-result",
            st.one_of(*(mutations(b) for b in blinded), *(reheadered(b, vc.EnvelopeKind.BLINDED) for b in blinded)),
            authority.decide,
            (vc.InvalidCiphertextError,),
        ),
        ParserTarget(
            "plaintext-stand-in",
            st.one_of(mutations(plain_template), mutations(plain_blinded), st.binary(max_size=256)),
            plaintext_bytes,
            (),
        ),
        ParserTarget(
            "bundle-meta",
            st.one_of(altered(keyset.public.meta()), st.dictionaries(st.text(max_size=20), json_values(), max_size=5)),
            bundle_meta,
            (vc.ConfigurationError,),
        ),
        ParserTarget(
            "bundle-context", mutations(keyset.public.context, hot=512), public_context, (vc.ConfigurationError,)
        ),
        ParserTarget(
            "evaluation-keys",
            st.one_of(
                st.tuples(mutations(keyset.evaluation.relin_keys), unprinted([keyset.evaluation.conjugation_keys])),
                st.tuples(unprinted([keyset.evaluation.relin_keys]), mutations(keyset.evaluation.conjugation_keys)),
            ),
            evaluation_keys,
            (vc.ConfigurationError,),
        ),
        ParserTarget(
            "key-files",
            st.one_of(mutations(valid_meta, hot=len(valid_meta)), st.binary(max_size=64)),
            meta_file,
            (vc.ConfigurationError,),
        ),
        ParserTarget(
            "public-description",
            st.one_of(altered(keyset.description.to_dict()), json_values()),
            description,
            (vc.SignatureError,),
        ),
        ParserTarget(
            "decision-record",
            st.one_of(altered(record.to_dict()), json_values()),
            decision,
            (vc.SignatureError,),
        ),
        ParserTarget("wire-answer", wire_answers, quietly(wire_answer), ()),
        ParserTarget(
            "client-answers",
            st.tuples(st.sampled_from([200, 201, 204, 400, 422, 503]), keys_bodies, other_bodies),
            matcher_answers,
            (),
        ),
        ParserTarget(
            "image",
            st.one_of(*(mutations(image, hot=64) for image in images), st.binary(max_size=256)),
            quietly(read_image),
            (vc.ImageError,),
        ),
    ]


def quietly(parse: Callable[[Any], object]) -> Callable[[Any], object]:
    """``parse`` with warnings and log records suppressed: Pillow warns or logs about many damaged files it
    reads, the matcher logs every answer it refuses; thousands of those would bury the run's output."""

    def run(value: Any) -> object:
        logging.disable(logging.CRITICAL)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return parse(value)
        finally:
            logging.disable(logging.NOTSET)

    return run


def run_parser_target(target: ParserTarget, examples: int) -> int:
    """Throw ``examples`` generated inputs at the parser; how many calls it took (shrinking included).

    Anything but the allowed exceptions propagates, as hypothesis's minimal failing example.
    """
    from hypothesis import HealthCheck, given, settings

    calls = 0

    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(target.strategy)
    def run(value: Any) -> None:
        nonlocal calls
        calls += 1
        try:
            target.parse(value)
        except target.allowed:
            pass

    run()
    return calls


def fuzz_parsers(keyset: vc.KeySet, *, examples: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="veilface-fuzz-") as scratch:
        for target in parser_targets(keyset, Path(scratch)):
            try:
                results[target.name] = {"cases": run_parser_target(target, examples), "crash": None}
            except Exception as exc:
                results[target.name] = {"cases": examples, "crash": f"{type(exc).__name__}: {str(exc)[:300]}"}
    return results


# -- fuzzing: HTTP --------------------------------------------------------------------------------------


def openapi_documents(dep: Deployment) -> dict[str, dict[str, Any]]:
    """Both services' OpenAPI documents, from their real app factories (the services do not serve them)."""
    from pydantic import SecretStr

    from veilface.server.settings import AuthoritySettings, MatcherSettings
    from veilface.server.standin import plaintext_authority_app, plaintext_matcher_app

    scratch = dep.root / "openapi"

    def storage(service: str, keys: Path) -> dict[str, Any]:
        """The service's settings for its keys and a scratch data directory and SQLite database."""
        return {
            f"{service}_keys_dir": keys,
            f"{service}_data_dir": scratch / service,
            f"{service}_database_url": sqlite_url(scratch / f"{service}.db"),
            "authority_token": SecretStr(dep.authority_token),
        }

    operator = SecretStr(dep.operator_token)
    matcher = plaintext_matcher_app(MatcherSettings(**storage("matcher", dep.matcher_keys), operator_tokens=operator))
    authority = plaintext_authority_app(AuthoritySettings(**storage("authority", dep.keys_dir)))
    return {"matcher": matcher.openapi(), "authority": authority.openapi()}


def _ids(alphabet: str, low: int, high: int) -> SearchStrategy[str]:
    from hypothesis import strategies as st

    return st.text(alphabet, min_size=low, max_size=high)


def _deep_cases(dep: Deployment, pool: TemplatePool, enrolled: list[str]) -> dict[tuple[str, str], Any]:
    """Per body-carrying operation: bodies and headers that pass the early checks (real ciphertexts and
    mutations of them, well-formed headers, enrolled subjects), so that fuzzing reaches the parsers and the
    homomorphic work behind those checks."""
    from hypothesis import strategies as st

    matcher_cipher = vc.CkksMatcherCipher(dep.keyset.evaluation, model_id=MODEL_ID, dimension=DIMENSION)
    blinded = [
        matcher_cipher.blind_norm(pool.templates[0]),
        matcher_cipher.compare(pool.templates[0], pool.genuine[0], THRESHOLD),
    ]
    word = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
    hexdigits = "0123456789abcdef"

    def parts(body: Any, path: Any = None, headers: Any = None) -> Any:
        return st.tuples(body, st.just({}) if path is None else path, st.just({}) if headers is None else headers)

    return {
        ("PUT", "/v1/subjects/{subject_id}/template"): parts(
            st.one_of(unprinted(pool.templates), *(mutations(t) for t in pool.templates[:2])),
            st.fixed_dictionaries({"subject_id": _ids(word + ".@", 1, 40)}),
        ),
        ("POST", "/v1/subjects/{subject_id}/verify"): parts(
            st.one_of(unprinted(pool.genuine), *(mutations(p) for p in pool.genuine[:2])),
            st.fixed_dictionaries({"subject_id": st.sampled_from(enrolled)}),
            st.fixed_dictionaries({wire.CLIENT_NONCE: _ids(word, 16, 128)}),
        ),
        ("POST", "/v1/decisions"): parts(
            st.one_of(unprinted(blinded), *(mutations(b) for b in blinded)),
            None,
            st.fixed_dictionaries(
                {
                    wire.REQUEST_ID: _ids(word, 16, 64),
                    wire.SUBJECT_REF: _ids(hexdigits, 64, 64),
                    wire.TOKEN_ID: _ids(hexdigits, 32, 32),
                    wire.CLIENT_NONCE: _ids(word, 16, 128),
                    wire.PROBE_SHA256: st.just(hashlib.sha256(pool.genuine[0]).hexdigest()),
                }
            ),
        ),
    }


def _with_parts(parts: tuple[Any, tuple[bytes, dict[str, str], dict[str, str]]]) -> Any:
    from schemathesis.transport.serialization import Binary

    case, (body, path, headers) = parts
    case.body = Binary(body)
    case.path_parameters = {**(case.path_parameters or {}), **path}
    case.headers = {**(case.headers or {}), **headers}
    return case


def _fuzz_operation(
    cases: SearchStrategy[Any], *, url: str, token: str, examples: int, label: str, report: dict[str, Any]
) -> dict[str, Any]:
    from hypothesis import HealthCheck, given, settings
    from schemathesis.core.failures import FailureGroup
    from schemathesis.specs.openapi.checks import positive_data_acceptance

    statuses: Counter[str] = Counter()
    headers = bearer(token)

    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(cases)
    def call(case: Any) -> None:
        try:
            response = case.call(base_url=url, headers=headers, timeout=60)
        except Exception as exc:  # requests' transport errors: the service dropped the connection
            report["transport_errors"].append(f"{label}: {type(exc).__name__}")
            statuses["none"] += 1
            return
        statuses[str(response.status_code)] += 1
        if response.status_code >= 500:
            body = response.content[:300].decode(errors="replace")
            report["server_errors"].append({"operation": label, "status": response.status_code, "body": body})
        if any(value in (".", "..") for value in (case.path_parameters or {}).values()):
            # requests resolves these path segments before sending, so the case reached another route (its
            # 404 or 405 is right there); the veilface client escapes them (tests/test_fuzz_http.py).
            return
        try:
            # Statuses, media types and bodies as documented, schema-invalid requests refused. Not checked:
            # that schema-valid requests succeed, since random bytes are never a valid ciphertext.
            case.validate_response(
                response,
                excluded_checks=[positive_data_acceptance],
                headers=headers,
                transport_kwargs={"base_url": url, "headers": headers},
            )
        except FailureGroup as failures:
            for failure in failures.exceptions:
                report["nonconforming"].append(f"{label}: {failure.title} ({response.status_code})")

    call()
    return {"cases": sum(statuses.values()), "statuses": dict(sorted(statuses.items()))}


def fuzz_http(dep: Deployment, pool: TemplatePool, *, examples: int) -> dict[str, Any]:
    """Every operation of both services under schemathesis, with valid tokens: positive and negative cases
    from the OpenAPI documents, plus cases carrying real ciphertexts or mutations of them. ``examples``
    cases per kind and operation; counts per operation and status, and every 5xx."""
    import schemathesis
    from hypothesis import strategies as st
    from schemathesis.core.result import Err
    from schemathesis.generation.modes import GenerationMode

    # Typed as Any: mypy checks for Python 3.10, which lacks the StrEnum that GenerationMode derives from.
    positive: Any = GenerationMode.POSITIVE
    negative: Any = GenerationMode.NEGATIVE

    enrolled = {f"fuzz-{i}": template for i, template in enumerate(pool.templates[:2])}
    dep.enrol(enrolled)
    deep = _deep_cases(dep, pool, sorted(enrolled))
    services = {"matcher": (dep.matcher, dep.operator_token), "authority": (dep.authority, dep.authority_token)}
    report: dict[str, Any] = {"operations": {}, "server_errors": [], "transport_errors": [], "nonconforming": []}
    for name, document in openapi_documents(dep).items():
        service, token = services[name]
        for result in schemathesis.openapi.from_dict(document).get_all_operations():
            if isinstance(result, Err):
                raise vc.ConfigurationError(f"the {name}'s OpenAPI document has an unusable operation: {result.err()}")
            operation = result.ok()
            key = (operation.method.upper(), operation.path)
            kinds = [operation.as_strategy(positive)]
            if any(operation.iter_parameters()) or operation.body:
                kinds.append(operation.as_strategy(negative))
            if key in deep:
                kinds.append(st.tuples(operation.as_strategy(positive), deep[key]).map(_with_parts))
            label = f"{name} {key[0]} {key[1]}"
            report["operations"][label] = _fuzz_operation(
                st.one_of(*kinds),
                url=service.url,
                token=token,
                examples=examples * len(kinds),
                label=label,
                report=report,
            )
    report["cases"] = sum(op["cases"] for op in report["operations"].values())
    report["services_alive"] = dep.matcher.running() and dep.authority.running()
    return report
