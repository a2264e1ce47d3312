"""One decision per blinded result: decrypt, check replays and budgets, audit, sign.

A verification's probe hash and nonce are the matcher's claims, signed as sent: refusing a probe hash signed
for before guards against a faulty matcher that sends the same probe twice, not a dishonest one, which can
claim any hash (docs/design.md §2.6).

The wire format (headers, answer) is ``veilface.protocol``'s :class:`DecisionRequest` and :class:`DecisionAnswer`.
"""

from __future__ import annotations

import logging
import time
from typing import Annotated

import anyio
from fastapi import APIRouter, Header, Request

from veilface.crypto import Outcome, Purpose, sign_decision
from veilface.protocol import DecisionAnswer, ProblemType, headers, paths
from veilface.server.authority.deps import MatcherOnly, State
from veilface.server.authority.ledger import BudgetExhaustedError, ReplayedProbeError, ReplayError, refused_outcome
from veilface.server.bodies import BINARY_BODY, read_ciphertext_body
from veilface.server.problems import Problem, invalid_request, problem_responses

router = APIRouter(tags=["decisions"])
log = logging.getLogger("veilface.authority")


def _header(value: str | None, name: str) -> str:
    if value is None or not headers.well_formed(name, value):
        raise invalid_request(f"header {name} is missing or malformed")
    return value


@router.post(
    paths.DECISIONS,
    response_model=DecisionAnswer,
    responses=problem_responses(401, 409, 413, 415, 422, 429, 503),
    openapi_extra=BINARY_BODY,
)
async def decide(
    request: Request,
    _: MatcherOnly,
    state: State,
    request_id: Annotated[str | None, Header(alias=headers.REQUEST_ID)] = None,
    subject_ref: Annotated[str | None, Header(alias=headers.SUBJECT_REF)] = None,
    token_id: Annotated[str | None, Header(alias=headers.TOKEN_ID)] = None,
    client_nonce: Annotated[str | None, Header(alias=headers.CLIENT_NONCE)] = None,
    probe_sha256: Annotated[str | None, Header(alias=headers.PROBE_SHA256)] = None,
) -> DecisionAnswer:
    blinded = await read_ciphertext_body(request, state.engine.max_blinded_bytes)
    request_id = _header(request_id, headers.REQUEST_ID)
    subject_ref = _header(subject_ref, headers.SUBJECT_REF)
    token_id = _header(token_id, headers.TOKEN_ID)
    started = time.perf_counter()
    purpose, outcome = await state.engine.decide(blinded)
    state.metrics.stage.labels("decrypt").observe(time.perf_counter() - started)
    if purpose is Purpose.VERIFY:
        client_nonce = _header(client_nonce, headers.CLIENT_NONCE)
        probe_sha256 = _header(probe_sha256, headers.PROBE_SHA256)
    signs = purpose is Purpose.VERIFY and outcome in (Outcome.MATCH, Outcome.NO_MATCH)

    def record() -> None:
        state.ledger.record(
            request_id=request_id,
            key_id=state.engine.key_id,
            token_id=token_id,
            subject_ref=subject_ref,
            purpose=purpose,
            outcome=outcome,
            signed_probe=probe_sha256 if signs else None,
        )

    try:
        async with state.ledger_lock:
            await anyio.to_thread.run_sync(record)
    except ReplayError:
        raise Problem(ProblemType.REPLAYED_REQUEST, "this request id was used before") from None
    except ReplayedProbeError as exc:
        state.metrics.decisions.labels(purpose.value, refused_outcome(exc)).inc()
        log.warning("probe replayed", extra={"token_id": token_id})
        raise Problem(ProblemType.REPLAYED_PROBE, "a decision was signed for this probe before") from None
    except BudgetExhaustedError as exc:
        state.metrics.decisions.labels(purpose.value, refused_outcome(exc)).inc()
        log.warning("budget exhausted", extra={"budget": exc.budget, "token_id": token_id})
        retry = {headers.RETRY_AFTER: str(exc.retry_after_s)} if exc.retry_after_s is not None else {}
        renew = "; the key needs renewal" if exc.budget == "key" else ""
        raise Problem(
            ProblemType.BUDGET_EXHAUSTED, f"the {exc.budget} decision budget is exhausted{renew}", headers=retry
        ) from None
    state.metrics.decisions.labels(purpose.value, outcome.value).inc()
    log.info("decision", extra={"purpose": purpose.value, "outcome": outcome.value, "token_id": token_id})
    signed = None
    if signs:
        assert client_nonce is not None and probe_sha256 is not None
        signed = sign_decision(
            state.signing_key,
            request_id=request_id,
            subject_ref=subject_ref,
            match=outcome is Outcome.MATCH,
            key_id=state.engine.key_id,
            client_nonce=client_nonce,
            probe_sha256=probe_sha256,
        ).to_dict()
    return DecisionAnswer(request_id=request_id, purpose=purpose, outcome=outcome, record=signed)
