"""The matcher's connection to the authority: one pooled HTTP client, a hard deadline per call.

Every call finishes within ``VEILFACE_AUTHORITY_TIMEOUT`` (1.8 s by default: with the matcher's own work, a
503 for an authority that hangs comes within 2 s) however the authority behaves: unreachable or slow becomes
503, a budget refusal 429, a replayed request id or probe 409 (relayed), anything else unexpected 502. The deadline
is per call, not per request: under overload a request that queued for a worker still gives the authority
its full time, rather than turning slowness into errors. Records are checked
against the authority's key before they reach a client.
"""

from __future__ import annotations

import logging
import ssl
import time
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
from pydantic import ValidationError

from veilface.crypto import DecisionRecord, Outcome, Purpose, SignatureError, VerifyKey, verify_decision
from veilface.protocol import PROBLEM_BASE, DecisionAnswer, DecisionRequest, ProblemType, headers, paths
from veilface.server.problems import Problem, retry_later

log = logging.getLogger("veilface.matcher.authority")
#: Seconds the matcher keeps the authority's readiness: ``/readyz`` needs no token, and each check costs the
#: authority two requests, so any number of probes costs it at most two per this many seconds.
READY_CACHE_S = 1.0


@dataclass(frozen=True)
class AuthorityDecision:
    outcome: Outcome
    record: DecisionRecord | None


def _unavailable(detail: str) -> Problem:
    return retry_later(ProblemType.AUTHORITY_UNAVAILABLE, detail)


def replayed_probe() -> Problem:
    return Problem(
        ProblemType.REPLAYED_PROBE, "this probe was answered before; encrypt the embedding again for each verification"
    )


def _bad_answer(detail: str) -> Problem:
    return Problem(ProblemType.AUTHORITY_BAD_ANSWER, detail)


class AuthorityClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        verify_key: VerifyKey,
        key_id: str,
        timeout: float,
        ca_file: Path | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._timeout = timeout
        self._verify_key = verify_key
        self._key_id = key_id
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(ca_file)) if ca_file else True
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(timeout),
            transport=transport,
            verify=verify,
        )
        self._readiness: tuple[float, bool] | None = None  # (monotonic time checked, ready)
        self._readiness_lock = anyio.Lock()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def ready(self) -> bool:
        """Reachable, ready itself (its database of budgets and audit rows, without which it decides nothing),
        accepting our token, holding the signing key our clients trust and our CKKS key (during a key renewal, a
        matcher on the new keys pointed at an authority on the old ones is not ready).

        The answer is reused for :data:`READY_CACHE_S`; callers arriving during a check wait for its answer."""
        async with self._readiness_lock:
            if self._readiness is not None and time.monotonic() - self._readiness[0] < READY_CACHE_S:
                return self._readiness[1]
            ready = await self._check_ready()
            self._readiness = (time.monotonic(), ready)
            return ready

    async def _check_ready(self) -> bool:
        try:
            with anyio.fail_after(self._timeout):
                own = await self._client.get(paths.READYZ)
                if own.status_code != 200:
                    log.warning("authority not ready", extra={"status": own.status_code})
                    return False
                response = await self._client.get(paths.SIGNING_KEY)
        except (httpx.HTTPError, TimeoutError):
            return False
        if response.status_code != 200:
            log.warning("authority not ready", extra={"status": response.status_code})
            return False
        authority_key_id = response.headers.get(headers.KEY_ID)
        if authority_key_id != self._key_id:
            log.warning("authority holds another key", extra={"authority_key_id": authority_key_id})
            return False
        return response.content.strip() == self._verify_key.to_pem().strip()

    async def decide(
        self,
        blinded: bytes,
        *,
        purpose: Purpose,
        request_id: str,
        subject_ref: str,
        token_id: str,
        client_nonce: str | None = None,
        probe_sha256: str | None = None,
    ) -> AuthorityDecision:
        verification = (
            {"client_nonce": client_nonce, "probe_sha256": probe_sha256}
            if client_nonce is not None and probe_sha256 is not None
            else {}
        )
        request = DecisionRequest(request_id=request_id, subject_ref=subject_ref, token_id=token_id, **verification)
        try:
            with anyio.fail_after(self._timeout):
                response = await self._client.post(paths.DECISIONS, content=blinded, headers=request.as_headers())
        except (httpx.HTTPError, TimeoutError) as exc:
            log.warning("authority unreachable", extra={"error": type(exc).__name__})
            raise _unavailable("the authority did not answer in time; retry later") from None
        if response.status_code != 200:
            raise self._relay(response)
        try:
            answer = DecisionAnswer.model_validate_json(response.content)
        except ValidationError:
            raise _bad_answer("the authority's answer does not parse") from None
        if answer.request_id != request_id or answer.purpose is not purpose:
            raise _bad_answer("the authority answered another request")
        if answer.record is None:
            if purpose is Purpose.VERIFY and answer.outcome in (Outcome.MATCH, Outcome.NO_MATCH):
                raise _bad_answer("the authority's decision is unsigned")
            return AuthorityDecision(answer.outcome, None)
        try:
            record = DecisionRecord.from_dict(answer.record)
            verify_decision(
                record, self._verify_key, client_nonce=client_nonce, probe_sha256=probe_sha256, key_id=self._key_id
            )
        except SignatureError as exc:
            log.error("authority record rejected", extra={"reason": exc.message})
            raise _bad_answer("the authority's decision record does not verify") from None
        if record.request_id != request_id or record.subject_ref != subject_ref:
            raise _bad_answer("the authority's decision record answers another request")
        expected = Outcome.MATCH if record.match else Outcome.NO_MATCH
        if answer.outcome is not expected:
            raise _bad_answer("the authority's outcome and record disagree")
        return AuthorityDecision(answer.outcome, record)

    @staticmethod
    def _relay(response: httpx.Response) -> Problem:
        status = response.status_code
        slug, detail = "", ""
        try:
            body = response.json()
            slug = str(body.get("type", "")).removeprefix(PROBLEM_BASE)
            detail = str(body.get("detail", ""))
        except (ValueError, AttributeError):
            pass
        if status == 429:
            retry_after = response.headers.get(headers.RETRY_AFTER)
            return Problem(
                ProblemType.BUDGET_EXHAUSTED,
                detail or "the authority's budget is exhausted",
                headers={headers.RETRY_AFTER: retry_after} if retry_after else None,
            )
        if status == 409 and slug == ProblemType.REPLAYED_PROBE.slug:
            return replayed_probe()
        if status == 409:
            return Problem(ProblemType.REPLAYED_REQUEST, "the authority has seen this request id")
        if status in (401, 403):
            log.error("authority refused the matcher's token", extra={"status": status})
            return _unavailable("the authority refused the matcher's credentials")
        if status >= 500:
            return _unavailable("the authority failed; retry later")
        log.error("authority rejected a request", extra={"status": status, "problem": slug})
        return _bad_answer("the authority rejected the matcher's request")
