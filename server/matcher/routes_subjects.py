"""Subjects: enrol a template, verify a probe against it, read its metadata, delete it.

Checks run in the documented order: token (401) and scope (403), unknown or existing subject (404/409),
size (413), content type (415), then the request's own fields and the ciphertext (422).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable
from typing import Annotated, TypeVar

import anyio
from fastapi import APIRouter, Header, Request, Response
from pydantic import BaseModel

from veilface.crypto import NORM_TOLERANCE, Outcome, Purpose, probe_digest
from veilface.server import wire
from veilface.server.auth import OperatorAuth
from veilface.server.bodies import BINARY_BODY, read_ciphertext_body
from veilface.server.matcher.deps import AdminOperator, EnrollOperator, Operator, State, SubjectId, VerifyOperator
from veilface.server.matcher.state import MatcherState
from veilface.server.matcher.store import SubjectExistsError, SubjectMeta
from veilface.server.problems import Problem, invalid_request, problem_responses

router = APIRouter(prefix="/v1/subjects", tags=["subjects"])
T = TypeVar("T")


class Subject(BaseModel):
    subject_id: str
    key_id: str
    model_id: str
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, meta: SubjectMeta) -> Subject:
        return cls(
            subject_id=meta.subject_id,
            key_id=meta.key_id,
            model_id=meta.model_id,
            created_at=meta.created_at,
            updated_at=meta.updated_at,
        )


class Decision(BaseModel):
    request_id: str
    subject_id: str
    subject_ref: str
    match: bool
    key_id: str
    issued_at: str
    client_nonce: str
    probe_sha256: str
    signature: str


def _unknown_subject() -> Problem:
    return Problem(404, "subject-not-found", "Subject not found", "no template is enrolled for this subject")


def _subject_exists() -> Problem:
    return Problem(
        409, "subject-exists", "Subject exists", "a template is enrolled for this subject; use ?replace=true"
    )


async def _timed(state: MatcherState, stage: str, work: Awaitable[T]) -> T:
    started = time.perf_counter()
    try:
        return await work
    finally:
        state.metrics.stage.labels(stage).observe(time.perf_counter() - started)


def _new_request_id() -> str:
    return secrets.token_hex(16)


@router.put(
    "/{subject_id}/template",
    status_code=201,
    response_model=Subject,
    responses=problem_responses(401, 403, 409, 413, 415, 422, 429, 502, 503),
    openapi_extra=BINARY_BODY,
)
async def enrol(
    subject_id: SubjectId, request: Request, operator: EnrollOperator, state: State, replace: bool = False
) -> Subject:
    """Enrol an encrypted template after the authority confirms it is normalised; replacing needs admin."""
    if replace:
        OperatorAuth.require(operator, "admin")
    existing = await anyio.to_thread.run_sync(state.store.meta, subject_id)
    if existing is not None and not replace:
        raise _subject_exists()
    template = await read_ciphertext_body(request, state.engine.max_envelope_bytes)
    async with state.in_flight:
        blinded = await _timed(state, "blind_norm", state.engine.blind_norm(template))
        decision = await _timed(
            state,
            "authority",
            state.authority.decide(
                blinded,
                purpose=Purpose.ENROL,
                request_id=_new_request_id(),
                subject_ref=state.pseudonyms.subject_ref(subject_id),
                token_id=operator.token_id,
            ),
        )
    state.metrics.decisions.labels(Purpose.ENROL.value, decision.outcome.value).inc()
    if decision.outcome is Outcome.NOT_NORMALISED:
        raise Problem(
            422,
            "template-not-normalised",
            "Template not normalised",
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
    return Subject.of(meta)


@router.post(
    "/{subject_id}/verify",
    response_model=Decision,
    responses=problem_responses(401, 403, 404, 409, 413, 415, 422, 429, 502, 503),
    openapi_extra=BINARY_BODY,
)
async def verify(
    subject_id: SubjectId,
    request: Request,
    operator: VerifyOperator,
    state: State,
    client_nonce: Annotated[
        str | None, Header(alias=wire.CLIENT_NONCE, description="16-128 characters of A-Z a-z 0-9 _ -")
    ] = None,
) -> Decision:
    """Compare a probe with the enrolled template; answer the authority's signed one-bit decision."""
    stored = await anyio.to_thread.run_sync(state.store.get, subject_id)
    if stored is None:
        raise _unknown_subject()
    probe = await read_ciphertext_body(request, state.engine.max_envelope_bytes)
    if client_nonce is None or not wire.NONCE_PATTERN.match(client_nonce):
        raise invalid_request(f"{wire.CLIENT_NONCE} must be 16-128 characters of A-Z a-z 0-9 _ -")
    if (stored.meta.key_id, stored.meta.model_id) != (state.engine.key_id, state.engine.model_id):
        raise Problem(
            422,
            "reenrolment-required",
            "Re-enrolment required",
            "this subject's template was made under another key or model; enrol the subject again",
        )
    async with state.in_flight:
        blinded = await _timed(state, "compare", state.engine.compare(stored.template, probe, state.threshold))
        decision = await _timed(
            state,
            "authority",
            state.authority.decide(
                blinded,
                purpose=Purpose.VERIFY,
                request_id=_new_request_id(),
                subject_ref=state.pseudonyms.subject_ref(subject_id),
                token_id=operator.token_id,
                client_nonce=client_nonce,
                probe_sha256=probe_digest(probe),
            ),
        )
    state.metrics.decisions.labels(Purpose.VERIFY.value, decision.outcome.value).inc()
    if decision.outcome is Outcome.NOT_NORMALISED or decision.record is None:
        raise Problem(
            422,
            "probe-not-normalised",
            "Probe not normalised",
            f"the probe's squared norm is outside 1 +/- {NORM_TOLERANCE}; L2-normalise the embedding before encrypting",
        )
    return Decision(**decision.record.with_subject(subject_id).to_dict())


@router.get("/{subject_id}", response_model=Subject, responses=problem_responses(401, 404, 422, 503))
async def subject(subject_id: SubjectId, _: Operator, state: State) -> Subject:
    """The subject's metadata; the template itself never leaves the matcher."""
    meta = await anyio.to_thread.run_sync(state.store.meta, subject_id)
    if meta is None:
        raise _unknown_subject()
    return Subject.of(meta)


@router.delete(
    "/{subject_id}", status_code=204, response_class=Response, responses=problem_responses(401, 403, 404, 422, 503)
)
async def delete(subject_id: SubjectId, _: AdminOperator, state: State) -> Response:
    """Erase the subject's template (its bytes are overwritten in SQLite, see database.py)."""
    if not await anyio.to_thread.run_sync(state.store.delete, subject_id):
        raise _unknown_subject()
    return Response(status_code=204)
