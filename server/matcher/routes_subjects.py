"""Subjects: enrol a template, verify a probe against it, read its metadata, delete it.

Checks run in the documented order: token (401) and scope (403), unknown or existing subject (404/409),
size (413), content type (415), the request's own fields (422), a probe answered before (409), then the
ciphertext (422).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import anyio
from fastapi import APIRouter, Header, Request, Response

from veilface.crypto import NORM_TOLERANCE, Outcome, Purpose, probe_digest
from veilface.protocol import DecisionRecord, ProblemType, SubjectMeta, headers, paths
from veilface.server.auth import OperatorAuth
from veilface.server.bodies import BINARY_BODY, read_ciphertext_body
from veilface.server.matcher.authority_client import AuthorityDecision, replayed_probe
from veilface.server.matcher.deps import AdminOperator, EnrollOperator, State, SubjectId, VerifyOperator
from veilface.server.matcher.state import MatcherState
from veilface.server.matcher.store import SubjectExistsError
from veilface.server.problems import Problem, invalid_request, problem_responses
from veilface.server.settings import OperatorToken

router = APIRouter(tags=["subjects"])
T = TypeVar("T")


def _unknown_subject() -> Problem:
    return Problem(ProblemType.SUBJECT_NOT_FOUND, "no template is enrolled for this subject")


def _subject_exists() -> Problem:
    return Problem(ProblemType.SUBJECT_EXISTS, "a template is enrolled for this subject; use ?replace=true")


async def _timed(state: MatcherState, stage: str, work: Awaitable[T]) -> T:
    started = time.perf_counter()
    try:
        return await work
    finally:
        state.metrics.stage.labels(stage).observe(time.perf_counter() - started)


async def _decide(
    state: MatcherState,
    subject_id: str,
    operator: OperatorToken,
    purpose: Purpose,
    stage: str,
    blind: Callable[[], Awaitable[bytes]],
    **verification: str,
) -> AuthorityDecision:
    """The homomorphic step, then the authority's decision on its blinded result, in one in-flight slot."""
    async with state.in_flight:
        blinded = await _timed(state, stage, blind())
        decision = await _timed(
            state,
            "authority",
            state.authority.decide(
                blinded,
                purpose=purpose,
                request_id=headers.new_request_id(),
                subject_ref=state.pseudonyms.subject_ref(subject_id),
                token_id=operator.token_id,
                **verification,
            ),
        )
    state.metrics.decisions.labels(purpose.value, decision.outcome.value).inc()
    return decision


@router.put(
    paths.SUBJECT_TEMPLATE,
    status_code=201,
    response_model=SubjectMeta,
    responses=problem_responses(401, 403, 409, 413, 415, 422, 429, 502, 503),
    openapi_extra=BINARY_BODY,
)
async def enrol(
    subject_id: SubjectId, request: Request, operator: EnrollOperator, state: State, replace: bool = False
) -> SubjectMeta:
    """Enrol an encrypted template after the authority confirms it is normalised; replacing needs admin."""
    if replace:
        OperatorAuth.require(operator, "admin")
    existing = await anyio.to_thread.run_sync(state.store.meta, subject_id)
    if existing is not None and not replace:
        raise _subject_exists()
    template = await read_ciphertext_body(request, state.engine.max_envelope_bytes)
    decision = await _decide(
        state, subject_id, operator, Purpose.ENROL, "blind_norm", lambda: state.engine.blind_norm(template)
    )
    if decision.outcome is Outcome.NOT_NORMALISED:
        raise Problem(
            ProblemType.TEMPLATE_NOT_NORMALISED,
            f"the template's squared norm is outside 1 +/- {NORM_TOLERANCE}; L2-normalise the embedding first",
        )

    def store() -> SubjectMeta:
        return state.store.put(
            subject_id,
            key_id=state.engine.key_id,
            model_id=state.engine.model_id,
            template=template,
            replace=replace,
        )

    try:
        meta = await anyio.to_thread.run_sync(store)
    except SubjectExistsError:
        raise _subject_exists() from None
    return meta


@router.post(
    paths.SUBJECT_VERIFY,
    response_model=DecisionRecord,
    responses=problem_responses(401, 403, 404, 409, 413, 415, 422, 429, 502, 503),
    openapi_extra=BINARY_BODY,
)
async def verify(
    subject_id: SubjectId,
    request: Request,
    operator: VerifyOperator,
    state: State,
    client_nonce: Annotated[str | None, Header(alias=headers.CLIENT_NONCE, description=headers.NONCE_SYNTAX)] = None,
) -> DecisionRecord:
    """Compare a probe with the enrolled template; answer the authority's signed one-bit decision."""
    stored = await anyio.to_thread.run_sync(state.store.get, subject_id)
    if stored is None:
        raise _unknown_subject()
    probe = await read_ciphertext_body(request, state.engine.max_envelope_bytes)
    if client_nonce is None or not headers.well_formed(headers.CLIENT_NONCE, client_nonce):
        raise invalid_request(f"{headers.CLIENT_NONCE} must be {headers.NONCE_SYNTAX}")
    if (stored.meta.key_id, stored.meta.model_id) != (state.engine.key_id, state.engine.model_id):
        raise Problem(
            ProblemType.REENROLMENT_REQUIRED,
            "this subject's template was made under another key or model; enrol the subject again",
        )
    # A probe is spent by its signed decision, and only by one: a refusal or an outage leaves it usable.
    key_id, digest = state.engine.key_id, probe_digest(probe)
    if await anyio.to_thread.run_sync(state.store.probe_consumed, key_id, digest):
        raise replayed_probe()
    decision = await _decide(
        state,
        subject_id,
        operator,
        Purpose.VERIFY,
        "compare",
        lambda: state.engine.compare(stored.template, probe, state.threshold),
        client_nonce=client_nonce,
        probe_sha256=digest,
    )
    if decision.outcome is Outcome.NOT_NORMALISED or decision.record is None:
        raise Problem(
            ProblemType.PROBE_NOT_NORMALISED,
            f"the probe's squared norm is outside 1 +/- {NORM_TOLERANCE}; L2-normalise the embedding before encrypting",
        )
    # Two identical probes at once both pass the check above; only the first to record its decision answers.
    if not await anyio.to_thread.run_sync(state.store.consume_probe, key_id, digest):
        raise replayed_probe()
    return decision.record.with_subject(subject_id)


@router.get(paths.SUBJECT, response_model=SubjectMeta, responses=problem_responses(401, 403, 404, 422, 503))
async def subject(subject_id: SubjectId, _: AdminOperator, state: State) -> SubjectMeta:
    """The subject's metadata (admin: whether someone is enrolled, and since when, is personal data); the
    template itself never leaves the matcher."""
    meta = await anyio.to_thread.run_sync(state.store.meta, subject_id)
    if meta is None:
        raise _unknown_subject()
    return meta


@router.delete(
    paths.SUBJECT, status_code=204, response_class=Response, responses=problem_responses(401, 403, 404, 422, 503)
)
async def delete(subject_id: SubjectId, _: AdminOperator, state: State) -> Response:
    """Erase the subject's template (its bytes are overwritten in SQLite, see database.py)."""
    if not await anyio.to_thread.run_sync(state.store.delete, subject_id):
        raise _unknown_subject()
    return Response(status_code=204)
