"""The authority as a one-bit oracle, and what bounds it: budgets, replay refusal, the audit log.

Budgets are configured through the environment of real service processes. The key-recovery attack of
docs/design.md §5.1 runs for real against the HTTP API with real CKKS, with ciphertexts
crafted from the public bundle alone, and is cut off by the per-token and global budgets.
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
import server_fixtures as sf
import tenseal as ts
import tenseal.sealapi as sealapi
from server_fixtures import ADMIN_TOKEN, DIMENSION, MODEL_ID, THRESHOLD, octets, unit

import veilface.crypto as vc
from veilface.crypto._seal_io import SealFiles
from veilface.server.authority import create_authority_app
from veilface.server.authority.engine import AuthorityEngine
from veilface.server.authority.ledger import (
    audit_entries,
    inspect_chain,
    open_ledger_database,
    token_use,
)
from veilface.server.database import Database
from veilface.server.keystore import read_public_description
from veilface.server.launch import start_services
from veilface.server.matcher import create_matcher_app
from veilface.server.matcher.engine import MatcherEngine
from veilface.server.settings import AuthoritySettings, token_id

TOKEN_A = "attacker-token-a-0123456789"
TOKEN_B = "attacker-token-b-0123456789"
TOKEN_C = "operator-token-c-0123456789"
NONCE = "oracle-nonce-0123456789"
PER_SUBJECT = AuthoritySettings.model_fields["budget_per_subject"].default


def slug(response: httpx.Response) -> str:
    return str(response.json()["type"]).rsplit("/", 1)[-1]


def refused_by(response: httpx.Response) -> str:
    """The budget a 429 names ("the token decision budget is exhausted")."""
    assert response.status_code == 429 and slug(response) == "budget-exhausted", response.text
    found = re.search(r"the (\w+) decision budget is exhausted", response.json()["detail"])
    assert found is not None
    return found.group(1)


def authority_ledger(data: Path) -> Database:
    return open_ledger_database(f"sqlite:///{data / 'authority' / 'authority.db'}")


def ledger_outcomes(data: Path) -> list[str]:
    database = authority_ledger(data)
    try:
        assert inspect_chain(database).broken is None
        return [entry.outcome if not entry.granted else "granted" for entry in audit_entries(database)]
    finally:
        database.dispose()


# -- each budget, configured through the environment of real processes ----------------------------------------


class PlainSession:
    """Requests with the plaintext stand-in (budgets do not depend on the cipher) to real service processes."""

    def __init__(self, url: str, keys_dir: Path) -> None:
        key_id = read_public_description(keys_dir)[0].key_id
        self.cipher = vc.PlaintextClientCipher(key_id=key_id, model_id=MODEL_ID, dimension=DIMENSION)
        self.http = httpx.Client(base_url=url, timeout=10.0)
        self.rng = np.random.default_rng(50)

    def enrol(self, token: str, subject: str) -> httpx.Response:
        body = self.cipher.encrypt(unit(self.rng))
        return self.http.put(f"/v1/subjects/{subject}/template", content=body, headers=octets(token))

    def verify(self, token: str, subject: str) -> httpx.Response:
        headers = octets(token, **{"X-Client-Nonce": NONCE})
        return self.http.post(
            f"/v1/subjects/{subject}/verify", content=self.cipher.encrypt(unit(self.rng)), headers=headers
        )


def budget_env(**budgets: int) -> dict[str, str]:
    env = {"VEILFACE_OPERATOR_TOKENS": f"{TOKEN_A},{TOKEN_B},{TOKEN_C}"}
    return env | {f"VEILFACE_BUDGET_{name.upper()}": str(value) for name, value in budgets.items()}


def test_subject_token_and_key_budgets_each_refuse_with_429(keys_dir: Path, tmp_path: Path) -> None:
    """Per subject 2, per token 3, per key 6 (VEILFACE_BUDGET_*): each refuses exactly when it is spent;
    an enrolment's norm check is a decision too."""
    env = budget_env(per_subject=2, per_token=3, per_key=6)
    with start_services(keys_dir, tmp_path, operator_token=TOKEN_A, env=env, plaintext=True) as services:
        s = PlainSession(services.matcher_url, keys_dir)
        assert s.enrol(TOKEN_A, "s1").status_code == 201
        assert s.verify(TOKEN_A, "s1").status_code == 200
        subject = s.verify(TOKEN_A, "s1")  # s1: its enrolment and one verification
        assert s.enrol(TOKEN_A, "s2").status_code == 201
        token = s.verify(TOKEN_A, "s2")  # token A: three decisions
        assert s.enrol(TOKEN_B, "s3").status_code == 201
        assert s.verify(TOKEN_B, "s3").status_code == 200
        assert s.enrol(TOKEN_B, "s4").status_code == 201
        key = s.verify(TOKEN_C, "s4")  # six decisions under this key: every token is refused from now on
        key_enrol = s.enrol(TOKEN_C, "s5")
        assert s.http.get("/v1/subjects/s5", headers=sf.auth(TOKEN_C)).status_code == 404
    assert [refused_by(r) for r in (subject, token, key, key_enrol)] == ["subject", "token", "key", "key"]
    assert (subject.headers["retry-after"], token.headers["retry-after"]) == ("3600", "86400")
    assert "retry-after" not in key.headers and "the key needs renewal" in key.json()["detail"]
    assert ledger_outcomes(tmp_path) == [
        "granted", "granted", "refused-subject", "granted", "refused-token",
        "granted", "granted", "granted", "refused-key", "refused-key",
    ]  # fmt: skip


def test_the_global_budget_refuses_every_token_with_429(keys_dir: Path, tmp_path: Path) -> None:
    env = budget_env(global_per_minute=2)
    with start_services(keys_dir, tmp_path, operator_token=TOKEN_A, env=env, plaintext=True) as services:
        s = PlainSession(services.matcher_url, keys_dir)
        assert s.enrol(TOKEN_A, "g1").status_code == 201
        assert s.verify(TOKEN_A, "g1").status_code == 200
        refused = s.enrol(TOKEN_B, "g2")
        assert s.http.get("/v1/subjects/g2", headers=sf.auth(TOKEN_B)).status_code == 404
    assert refused_by(refused) == "global" and refused.headers["retry-after"] == "60"
    assert ledger_outcomes(tmp_path) == ["granted", "granted", "refused-global"]


# -- in-process services with real CKKS, to replay and to attack --------------------------------------------


class Recording(httpx.AsyncBaseTransport):
    """Passes the matcher's requests to the authority and keeps a copy: what someone on that link sees."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.requests: list[tuple[dict[str, str], bytes]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        kept = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        self.requests.append((kept, body))
        return await self.inner.handle_async_request(request)


@asynccontextmanager
async def ckks_services(
    keyset: vc.KeySet, keys_dir: Path, matcher_keys_dir: Path, data: Path, *, tokens: str, **budgets: int
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient, Recording]]:
    """Matcher and authority over ASGI with the real ciphers inline; returns HTTP clients and the recording."""
    authority_cipher = vc.CkksAuthorityCipher(keyset.secret)
    authority_app = create_authority_app(
        sf.authority_settings(keys_dir, data / "authority", **budgets),
        engine=AuthorityEngine.inline(authority_cipher, ciphertext_bytes=authority_cipher.ciphertext_bytes),
    )
    recording = Recording(httpx.ASGITransport(app=authority_app))
    matcher_cipher = vc.CkksMatcherCipher(keyset.evaluation, model_id=MODEL_ID, dimension=DIMENSION)
    matcher_app = create_matcher_app(
        sf.matcher_settings(matcher_keys_dir, data / "matcher", operator_tokens=tokens),
        engine=MatcherEngine.inline(matcher_cipher, ciphertext_bytes=matcher_cipher.ciphertext_bytes),
        authority_transport=recording,
    )
    async with sf.lifespan(authority_app), sf.lifespan(matcher_app):
        async with (
            httpx.AsyncClient(transport=httpx.ASGITransport(app=matcher_app), base_url="http://matcher") as m,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=authority_app), base_url="http://authority") as a,
        ):
            yield m, a, recording


@pytest.mark.anyio
async def test_a_replayed_request_id_is_refused_with_409(
    keyset: vc.KeySet, keys_dir: Path, matcher_keys_dir: Path, tmp_path: Path
) -> None:
    """A verification captured on the matcher-authority link and sent again gets no second decision."""
    client = vc.CkksClientCipher(keyset.public, model_id=MODEL_ID, dimension=DIMENSION)
    face = unit(np.random.default_rng(51))
    async with ckks_services(keyset, keys_dir, matcher_keys_dir, tmp_path, tokens=ADMIN_TOKEN) as (m, a, link):
        assert (
            await m.put("/v1/subjects/ann/template", content=client.encrypt(face), headers=octets())
        ).status_code == 201
        verify_headers = octets(**{"X-Client-Nonce": NONCE})
        first = await m.post("/v1/subjects/ann/verify", content=client.encrypt(face), headers=verify_headers)
        assert first.status_code == 200 and first.json()["match"] is True
        (enrol_headers, _), (headers, body) = link.requests
        replayed = await a.post("/v1/decisions", content=body, headers=headers)
        assert replayed.status_code == 409 and slug(replayed) == "replayed-request"
        # The request id is spent whatever the bytes: the enrolment's id with this blinded result is refused too.
        mixed = await a.post(
            "/v1/decisions", content=body, headers={**headers, "x-request-id": enrol_headers["x-request-id"]}
        )
        assert mixed.status_code == 409
    database = authority_ledger(tmp_path)
    request_ids = [entry.request_id for entry in audit_entries(database)]
    database.dispose()
    assert request_ids == [enrol_headers["x-request-id"], headers["x-request-id"]]


# -- the crafted-ciphertext key recovery of docs/design.md §5.1 ----------------------------------------------


class KeyRecoveryAttacker:
    """Crafted templates and probes built from the public bundle alone (docs/design.md §5.1).

    Decryption is m = c0 + c1 s. The template encrypts the constant polynomial sqrt(U), U = Delta^2 2/N being
    the unit of the constant coefficient, so its squared norm is 1 and it passes enrolment. A probe encrypts
    a + b X and has beta X^-j added to its c1, so it decrypts to a + b X + beta X^-j s: the cosine the
    authority compares with the threshold is then (a + beta s_j) / sqrt(U), while the probe's squared norm
    stays within 1 +- eps (s has ~2N/3 non-zero coefficients). With a / sqrt(U) = tau - delta and tau + delta,
    delta half the secret's share, two one-bit answers give s_j in {-1, 0, 1}: 2N answers give the key.
    Issue 15's projections do not stop it: both ciphertexts are unit length (the template is even an honest
    replicated vector, all components equal), and projections only refuse what is far longer than that.
    Only the default preset's single data prime is handled.
    """

    SECRET_SHARE = 0.003  # of the probe's squared norm carried by beta X^-j s

    def __init__(self, public: vc.KeyBundle, *, threshold: float) -> None:
        context = ts.context_from(public.context)
        self._seal = context.seal_context().data
        parms = self._seal.first_context_data().parms()
        self.n: int = parms.poly_modulus_degree()
        (self.q,) = (modulus.value() for modulus in parms.coeff_modulus())
        scale = 2.0 ** vc.get_preset(public.preset).scale_bits
        self._scale = scale
        self._encryptor = sealapi.Encryptor(self._seal, context.public_key().data)
        self._evaluator = sealapi.Evaluator(self._seal)
        self._files = SealFiles()
        self._header = {
            "scheme": "ckks",
            "encoding": "replicated",
            "key_id": public.key_id,
            "model_id": MODEL_ID,
            "dimension": DIMENSION,
            "preset": public.preset,
        }
        self._unit = math.sqrt(scale * scale * 2 / self.n)
        self._beta = math.sqrt(self.SECRET_SHARE * 3 / (2 * self.n))  # in units of sqrt(U)
        self._threshold = threshold
        self._ntt_x = self._transform(self.monomial(1, 1))

    def monomial(self, coefficient: int, power: int) -> np.ndarray:
        """coefficient * X^power mod (X^N + 1, q)."""
        power %= 2 * self.n
        if power >= self.n:
            coefficient, power = -coefficient, power - self.n
        values = np.zeros(self.n, dtype=np.uint64)
        values[power] = coefficient % self.q
        return values

    def _polys(self, data: bytearray) -> np.ndarray:
        """A writable (c0, c1) view of an uncompressed ciphertext's data, which ends the bytes."""
        return np.frombuffer(data, dtype="<u8", offset=len(data) - 16 * self.n).reshape(2, self.n)

    def _zero(self, *, ntt: bool) -> bytearray:
        ciphertext = sealapi.Ciphertext(self._seal)
        self._encryptor.encrypt_zero(ciphertext)
        if not ntt:
            self._evaluator.transform_from_ntt_inplace(ciphertext)
        return bytearray(self._files.ciphertext_bytes(ciphertext))

    def _transform(self, values: np.ndarray, *, inverse: bool = False) -> np.ndarray:
        """SEAL's own NTT (or its inverse), borrowed through a ciphertext whose first part is ``values``."""
        data = self._zero(ntt=inverse)
        polys = self._polys(data)
        polys[0], polys[1] = values, 1  # a non-zero c1: SEAL refuses to transform "transparent" ciphertexts
        ciphertext = sealapi.Ciphertext(self._seal)
        self._files.load(ciphertext, self._seal, bytes(data))
        if inverse:
            self._evaluator.transform_from_ntt_inplace(ciphertext)
        else:
            self._evaluator.transform_to_ntt_inplace(ciphertext)
        return self._polys(bytearray(self._files.ciphertext_bytes(ciphertext)))[0].copy()

    def _encryption(self, c0: np.ndarray, c1: np.ndarray | None = None) -> bytes:
        """A fresh public-key encryption of zero plus (c0, c1) in NTT form, at the scale the matcher expects."""
        ciphertext = sealapi.Ciphertext(self._seal)
        self._encryptor.encrypt_zero(ciphertext)
        ciphertext.scale = self._scale
        data = bytearray(self._files.ciphertext_bytes(ciphertext))
        polys = self._polys(data)
        polys[0] = (polys[0] + c0) % np.uint64(self.q)  # both below 2^60: no overflow
        if c1 is not None:
            polys[1] = (polys[1] + c1) % np.uint64(self.q)
        return vc.Envelope(vc.EnvelopeKind.EMBEDDING, self._header, bytes(data)).to_bytes()

    def template(self) -> bytes:
        return self._encryption(np.full(self.n, round(self._unit), dtype=np.uint64))

    def probe(self, j: int, above: bool) -> bytes:
        target = self._threshold + (self._beta / 2 if above else -self._beta / 2)
        a = round(target * self._unit)
        b = round(math.sqrt(1 - target * target - self.SECRET_SHARE) * self._unit)
        c0 = (np.array(self._ntt_x, dtype=object) * b + a) % self.q
        c1 = self._transform(self.monomial(round(self._beta * self._unit), -j))
        return self._encryption(c0.astype(np.uint64), c1)

    @staticmethod
    def coefficient(below_matched: bool, above_matched: bool) -> int:
        """s_j from the answers at tau - delta and tau + delta."""
        return 1 if below_matched else (0 if above_matched else -1)

    def secret_coefficients(self, secret: vc.KeyBundle, count: int) -> list[int]:
        """The real key's first coefficients, to check the attack (an attacker has no such bundle)."""
        context = ts.context_from(secret.context)
        secret_key = context.secret_key().data
        key = secret_key.data()
        ntt_values = np.array([key[i] for i in range(self.n)], dtype=np.uint64)  # the data prime's residues
        coefficients = self._transform(ntt_values, inverse=True)[:count]
        return [int(c) if c < self.q // 2 else int(c) - self.q for c in coefficients]


async def ask_until_refused(
    matcher: httpx.AsyncClient,
    attacker: KeyRecoveryAttacker,
    token: str,
    queue: list[tuple[int, bool]],
    answers: dict[tuple[int, bool], bool],
) -> str:
    """Enrol a crafted template under a fresh subject id, ask crafted probes against it while the per-subject
    budget lasts, repeat; return the budget that finally refuses."""
    while queue:
        subject = f"crafted-{secrets.token_hex(8)}"
        enrolled = await matcher.put(
            f"/v1/subjects/{subject}/template", content=attacker.template(), headers=octets(token)
        )
        if enrolled.status_code == 429:
            return refused_by(enrolled)
        assert enrolled.status_code == 201, enrolled.text
        for _ in range(PER_SUBJECT - 1):
            j, above = queue[0]
            headers = octets(token, **{"X-Client-Nonce": NONCE})
            response = await matcher.post(
                f"/v1/subjects/{subject}/verify", content=attacker.probe(j, above), headers=headers
            )
            if response.status_code == 429:
                return refused_by(response)
            assert response.status_code == 200, response.text
            answers[queue.pop(0)] = bool(response.json()["match"])
    raise AssertionError("the attack ran out of questions before any budget refused it")


@pytest.mark.anyio
async def test_crafted_key_recovery_is_cut_off_by_the_token_and_global_budgets_and_audited(
    keyset: vc.KeySet, keys_dir: Path, matcher_keys_dir: Path, tmp_path: Path
) -> None:
    """Two operator tokens run the attack; the answers they get are correct secret-key coefficients, and the
    per-token budget (40 decisions) then the global one (64 a minute) stop them after 57 of the ~2N needed."""
    attacker = KeyRecoveryAttacker(keyset.public, threshold=THRESHOLD)
    queue = [(j, above) for j in range(attacker.n) for above in (False, True)]
    answers: dict[tuple[int, bool], bool] = {}
    tokens = f"{TOKEN_A}:enroll+verify,{TOKEN_B}:enroll+verify"
    budgets = {"budget_per_token": 40, "budget_global_per_minute": 64}
    async with ckks_services(keyset, keys_dir, matcher_keys_dir, tmp_path, tokens=tokens, **budgets) as (m, _, _):
        assert await ask_until_refused(m, attacker, TOKEN_A, queue, answers) == "token"
        after_a = len(answers)
        assert await ask_until_refused(m, attacker, TOKEN_B, queue, answers) == "global"

    # Token A: 4 fresh subjects x (1 enrolment + 9 probes) = 40 decisions, 36 answers; its 5th enrolment is
    # refused. Token B: the 24 decisions left in the minute's 64 are 3 enrolments and 21 answers.
    assert (after_a, len(answers)) == (36, 57)
    assert len(answers) < 2 * attacker.n / 100
    recovered = [
        KeyRecoveryAttacker.coefficient(answers[(j, False)], answers[(j, True)])
        for j in range(attacker.n)
        if (j, True) in answers
    ]
    assert len(recovered) == 28
    truth = attacker.secret_coefficients(keyset.secret, len(recovered))
    assert recovered == truth and set(truth) == {-1, 0, 1}  # the answers really were key coefficients

    database = authority_ledger(tmp_path)
    per_token = {use.token_id: (use.granted, use.refused, use.subjects) for use in token_use(database)}
    assert per_token == {token_id(TOKEN_A): (40, 1, 5), token_id(TOKEN_B): (24, 1, 3)}
    refusals = [(e.token_id, e.outcome) for e in audit_entries(database) if not e.granted]
    assert refusals == [(token_id(TOKEN_A), "refused-token"), (token_id(TOKEN_B), "refused-global")]
    assert inspect_chain(database).broken is None
    database.dispose()


def test_the_default_budgets_keep_one_token_far_from_a_key() -> None:
    """At the defaults a token gets 9 answers per 10 decisions (one enrolment per fresh subject), 1,800 a day:
    the ~2N = 8,192 answers for the default preset's key take it at least 5 days (README, threat model)."""
    defaults = {name: info.default for name, info in AuthoritySettings.model_fields.items()}
    answers_per_day = (
        defaults["budget_per_token"] * (PER_SUBJECT - 1) / PER_SUBJECT * 86400 / defaults["budget_token_window"]
    )
    needed = 2 * vc.get_preset(vc.DEFAULT_PRESET).poly_modulus_degree
    assert math.ceil(needed / answers_per_day) >= 5
