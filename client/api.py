"""The veilface Python client: enrol, verify and delete faces without the operator ever seeing one.

    from veilface.client.api import Client

    with Client("http://127.0.0.1:8400", token="op-token", authority_key="keys/public/signing.pub") as client:
        client.enroll("alice", "id-card.jpg")
        decision = client.verify("alice", "selfie.jpg")
        print(decision.match)  # one bit, signed by the authority; no score exists on this side

The client fetches the deployment's public key bundle from the matcher and refuses to encrypt anything
unless the authority's signature over it verifies under the key it was given out of band, and has not
expired (``veilface.client.state``: the client keeps the newest bundle serial it has seen per authority in
its state directory, ``VEILFACE_STATE_DIR``). The face is detected, embedded and encrypted here, afresh for
every request (the matcher answers a probe's bytes once); only the ciphertext leaves. Each decision's
signature, nonce and probe hash are checked before it is returned.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from pydantic import ValidationError

from veilface.client.state import SeenSerials, check_bundle_freshness, default_state_dir
from veilface.crypto import (
    CkksClientCipher,
    ClientCipher,
    DecisionRecord,
    KeyBundle,
    ServiceError,
    SignatureError,
    VeilfaceError,
    VerifyKey,
    probe_digest,
    verify_decision,
    verify_public_bundle,
)
from veilface.protocol import ProblemType, PublicKeysAnswer, SubjectMeta, headers, paths

DEFAULT_SERVER = "http://127.0.0.1:8400"
#: What :meth:`Client.enroll` returns: the subject's metadata, as the matcher answers it.
Enrollment = SubjectMeta


class ProbeRefusedError(ServiceError):
    """The authority refused the probe: it was not a normalised embedding (norm check)."""


@dataclass(frozen=True)
class Deployment:
    """The matcher's public key bundle, after its signature was checked."""

    key_id: str
    preset: str
    model_id: str
    dimension: int
    bundle: KeyBundle
    serial: int = 0  # the authority's key set; 0: signed before serials
    expires_at: str | None = None  # when the authority's signature stops vouching for the bundle


def load_authority_key(source: VerifyKey | str | Path | bytes) -> VerifyKey:
    """The authority's Ed25519 key from a VerifyKey, PEM bytes or a PEM file path."""
    if isinstance(source, VerifyKey):
        return source
    if isinstance(source, bytes):
        return VerifyKey.from_pem(source)
    path = Path(source)
    try:
        return VerifyKey.from_pem(path.read_bytes())
    except FileNotFoundError:
        raise VeilfaceError(f"authority key {path} does not exist; pass the authority's signing.pub") from None
    except OSError as exc:
        raise VeilfaceError(
            f"cannot read authority key {path} ({exc.strerror}); pass the authority's signing.pub"
        ) from None


class Client:
    """A session with one matcher. Thread-compatible, not thread-safe; one per thread."""

    def __init__(
        self,
        server: str = DEFAULT_SERVER,
        *,
        token: str,
        authority_key: VerifyKey | str | Path | bytes | None,
        backend: str = "dlib",
        model_path: str | Path | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        verify_tls: bool | str | Path = True,
        state_dir: str | Path | None = None,
    ) -> None:
        """``state_dir``: where the newest bundle serial per authority is kept (default
        :func:`~veilface.client.state.default_state_dir`)."""
        # Only deleting and reading metadata work without the authority's key: nothing is encrypted or trusted.
        self._authority_key = None if authority_key is None else load_authority_key(authority_key)
        self._backend = backend
        self._model_path = model_path
        # A path is a CA bundle (e.g. the matcher's self-signed certificate); True trusts the system's CAs, or
        # the file named by SSL_CERT_FILE.
        verify: ssl.SSLContext | bool = verify_tls if isinstance(verify_tls, bool) else True
        try:
            if not isinstance(verify_tls, bool):
                verify = ssl.create_default_context(cafile=str(verify_tls))
        except (OSError, ssl.SSLError) as exc:
            raise VeilfaceError(f"cannot use {verify_tls} as the matcher's CA certificate: {exc.strerror}") from None
        try:
            self._http = httpx.Client(
                base_url=server.rstrip("/"),
                headers={"Authorization": f"Bearer {token}"},
                timeout=timeout,
                transport=transport,
                verify=verify,
            )
        except (httpx.InvalidURL, ValueError) as exc:
            raise VeilfaceError(f"matcher URL {server!r} is not a valid http(s) URL: {exc}") from None
        if self._http.base_url.scheme not in ("http", "https") or not self._http.base_url.host:
            raise VeilfaceError(f"matcher URL {server!r} is not a valid http(s) URL")
        self._seen = SeenSerials(Path(state_dir) if state_dir is not None else default_state_dir())
        self._deployment: Deployment | None = None
        self._cipher: ClientCipher | None = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- trust ---------------------------------------------------------------------------------------------

    def _trusted_key(self) -> VerifyKey:
        if self._authority_key is None:
            raise VeilfaceError(
                "no authority key: pass the authority's signing.pub; veilface refuses to encrypt a face under a "
                "key it cannot check"
            )
        return self._authority_key

    def deployment(self) -> Deployment:
        """Fetch and verify the public key bundle and its freshness (once per client)."""
        if self._deployment is None:
            body = self._json(self._request("GET", paths.PUBLIC_KEYS))
            try:
                answer = PublicKeysAnswer.model_validate(body)
            except ValidationError:
                raise SignatureError("the matcher's public key response is malformed") from None
            bundle, description = answer.public_bundle()
            authority_key = self._trusted_key()
            verify_public_bundle(bundle, description, answer.signature, authority_key)
            check_bundle_freshness(description, authority_key.fingerprint, self._seen)
            self._deployment = Deployment(
                key_id=description.key_id,
                preset=description.preset,
                model_id=description.model_id,
                dimension=description.dimension,
                bundle=bundle,
                serial=description.serial,
                expires_at=description.expires_at,
            )
        return self._deployment

    def cipher(self) -> ClientCipher:
        if self._cipher is None:
            deployment = self.deployment()
            self._cipher = CkksClientCipher(
                deployment.bundle, model_id=deployment.model_id, dimension=deployment.dimension
            )
        return self._cipher

    # -- faces ---------------------------------------------------------------------------------------------

    def embed(self, image: str | Path | bytes, *, take_largest: bool = False) -> np.ndarray:
        """The face's embedding, computed here with the deployment's model (it never leaves this process)."""
        from veilface.client.faces import embed_single, load_embedder

        embedder = load_embedder(self._backend, model_path=self._model_path)
        deployment = self.deployment()
        if embedder.model_id != deployment.model_id:
            raise VeilfaceError(
                f"this deployment uses model {deployment.model_id}, the local backend is {embedder.model_id}; "
                "choose the matching --backend/--model"
            )
        return embed_single(embedder, image, take_largest=take_largest)

    def enroll(
        self, subject_id: str, image: str | Path | bytes, *, replace: bool = False, take_largest: bool = False
    ) -> SubjectMeta:
        return self.enroll_embedding(subject_id, self.embed(image, take_largest=take_largest), replace=replace)

    def verify(self, subject_id: str, image: str | Path | bytes, *, take_largest: bool = False) -> DecisionRecord:
        return self.verify_embedding(subject_id, self.embed(image, take_largest=take_largest))

    # -- embeddings (for callers that embed elsewhere on the device, and for benchmarks) -------------------

    def enroll_embedding(self, subject_id: str, embedding: Any, *, replace: bool = False) -> SubjectMeta:
        return self.enroll_ciphertext(subject_id, self.cipher().encrypt(embedding), replace=replace)

    def enroll_ciphertext(self, subject_id: str, template: bytes, *, replace: bool = False) -> SubjectMeta:
        response = self._request(
            "PUT",
            paths.subject_path(paths.SUBJECT_TEMPLATE, subject_id),
            content=template,
            params={"replace": "true"} if replace else None,
            headers={"Content-Type": headers.OCTET_STREAM},
        )
        return self._subject_meta(response)

    def verify_embedding(self, subject_id: str, embedding: Any) -> DecisionRecord:
        return self.verify_ciphertext(subject_id, self.cipher().encrypt(embedding))

    def verify_ciphertext(self, subject_id: str, probe: bytes) -> DecisionRecord:
        """Verify an encrypted probe. The matcher answers a probe's bytes once: sent again, even after a
        timeout on this side, it is refused (409 ``replayed-probe``); encrypt afresh for every attempt."""
        nonce = headers.new_client_nonce()
        response = self._request(
            "POST",
            paths.subject_path(paths.SUBJECT_VERIFY, subject_id),
            content=probe,
            headers={"Content-Type": headers.OCTET_STREAM, headers.CLIENT_NONCE: nonce},
        )
        record = DecisionRecord.from_dict(self._json(response))
        verify_decision(
            record,
            self._trusted_key(),
            client_nonce=nonce,
            probe_sha256=probe_digest(probe),
            key_id=self.deployment().key_id,
        )
        if record.subject_id != subject_id:
            raise SignatureError("the decision names another subject")
        return record

    def delete(self, subject_id: str) -> None:
        self._request("DELETE", paths.subject_path(paths.SUBJECT, subject_id))

    def subject(self, subject_id: str) -> SubjectMeta:
        """Metadata of an enrolled subject (times, key_id, model_id; admin scope); the matcher never returns
        templates."""
        return self._subject_meta(self._request("GET", paths.subject_path(paths.SUBJECT, subject_id)))

    # -- HTTP ----------------------------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise ServiceError(f"the matcher at {self._http.base_url} did not answer in time", status=0) from None
        except httpx.TransportError as exc:
            raise ServiceError(
                f"cannot reach the matcher at {self._http.base_url} ({type(exc).__name__}); is it running?",
                status=0,
            ) from None
        if response.status_code >= 400:
            raise _problem(response)
        return response

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            raise ServiceError(
                "the matcher answered with something that is not JSON", status=response.status_code
            ) from None
        if not isinstance(body, dict):
            raise _unexpected(response)
        return body

    @classmethod
    def _subject_meta(cls, response: httpx.Response) -> SubjectMeta:
        try:
            return SubjectMeta.from_json(cls._json(response))
        except ValidationError:
            raise _unexpected(response) from None


def _unexpected(response: httpx.Response) -> ServiceError:
    return ServiceError("the matcher answered with unexpected JSON", status=response.status_code)


def _problem(response: httpx.Response) -> ServiceError:
    """An RFC 9457 problem+json answer as a ServiceError (or ProbeRefusedError)."""
    try:
        problem = response.json()
    except ValueError:
        problem = {}
    if not isinstance(problem, dict):
        problem = {}
    title = str(problem.get("title") or response.reason_phrase or "error")
    detail = str(problem.get("detail") or "")
    kind = str(problem.get("type") or "about:blank")
    message = f"{response.status_code} {title}" + (f": {detail}" if detail else "")
    cls = ProbeRefusedError if ProblemType.from_uri(kind) is ProblemType.PROBE_NOT_NORMALISED else ServiceError
    return cls(message, status=response.status_code, problem_type=kind)
