"""The wire contract in veilface.protocol: the services serve its paths, and its models read what they write."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import server_fixtures as sf
from pydantic import ValidationError

import veilface.crypto as vc
from veilface.protocol import (
    PROBLEM_BASE,
    DecisionRecord,
    DecisionRequest,
    ProblemType,
    PublicKeysAnswer,
    headers,
    paths,
)
from veilface.server.standin import plaintext_authority_app, plaintext_matcher_app


def test_protocol_loads_no_web_framework() -> None:
    code = (
        "import sys, veilface.protocol; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('fastapi', 'starlette', 'httpx', "
        "'sqlalchemy') or m.startswith(('veilface.server', 'veilface.client'))))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr


def _served(app: Any) -> set[str]:
    return set(app.openapi()["paths"])


def test_the_services_serve_exactly_the_protocols_paths(keys_dir: Path, matcher_keys_dir: Path, tmp_path: Path) -> None:
    authority = plaintext_authority_app(sf.authority_settings(keys_dir, tmp_path / "authority"))
    matcher = plaintext_matcher_app(sf.matcher_settings(matcher_keys_dir, tmp_path / "matcher"))
    both = {paths.HEALTHZ, paths.READYZ, paths.METRICS}
    assert _served(authority) == both | {paths.SIGNING_KEY, paths.DECISIONS}
    assert _served(matcher) == both | {paths.PUBLIC_KEYS, paths.SUBJECT, paths.SUBJECT_TEMPLATE, paths.SUBJECT_VERIFY}


@pytest.mark.parametrize(
    ("subject_id", "path"),
    [
        ("alice", "/v1/subjects/alice/template"),
        (".", "/v1/subjects/%2E/template"),
        ("..", "/v1/subjects/%2E%2E/template"),
        ("a/b?c", "/v1/subjects/a%2Fb%3Fc/template"),
        ("{subject_id}", "/v1/subjects/%7Bsubject_id%7D/template"),
    ],
)
def test_a_subject_id_stays_one_path_segment(subject_id: str, path: str) -> None:
    assert paths.subject_path(paths.SUBJECT_TEMPLATE, subject_id) == path


def test_problem_types_are_unique_and_read_back_from_their_uri() -> None:
    assert len({kind.slug for kind in ProblemType}) == len(ProblemType)
    for kind in ProblemType:
        assert kind.uri == PROBLEM_BASE + kind.slug and ProblemType.from_uri(kind.uri) is kind
        assert 400 <= kind.status < 600 and kind.title
    assert ProblemType.from_uri("about:blank") is None
    assert ProblemType.from_uri("probe-not-normalised") is None  # a slug is not a type URI


def test_a_decision_request_travels_as_headers() -> None:
    enrol = DecisionRequest(request_id="r" * 32, subject_ref="a" * 64, token_id="b" * 32)
    assert enrol.as_headers() == {
        "Content-Type": headers.OCTET_STREAM,
        headers.REQUEST_ID: "r" * 32,
        headers.SUBJECT_REF: "a" * 64,
        headers.TOKEN_ID: "b" * 32,
    }
    verify = enrol.model_copy(update={"client_nonce": headers.new_client_nonce(), "probe_sha256": "c" * 64})
    sent = verify.as_headers()
    assert all(headers.well_formed(name, sent[name]) for name in headers.HEADER_PATTERNS)
    assert DecisionRequest.model_validate(sent) == verify
    assert headers.well_formed(headers.REQUEST_ID, headers.new_request_id())
    for bad in ({"request_id": "short"}, {"subject_ref": "A" * 64}, {"token_id": "b" * 31}, {"client_nonce": "n o"}):
        with pytest.raises(ValidationError):
            DecisionRequest(**{"request_id": "r" * 32, "subject_ref": "a" * 64, "token_id": "b" * 32, **bad})


def test_the_public_keys_answer_reads_back_and_verifies(keyset: vc.KeySet) -> None:
    answer = PublicKeysAnswer.model_validate(
        PublicKeysAnswer.of(keyset.public, keyset.description, keyset.signature).model_dump()
    )
    bundle, description = answer.public_bundle()
    assert bundle.context == keyset.public.context and description == keyset.description
    vc.verify_public_bundle(bundle, description, answer.signature, keyset.signing_key.verify_key)
    for broken in ({"bundle": "not base64!"}, {"description": {"key_id": keyset.key_id}}):
        with pytest.raises(vc.SignatureError):
            answer.model_copy(update=broken).public_bundle()


@pytest.mark.parametrize("name", [field for field in DecisionRecord.__dataclass_fields__])
def test_a_decision_record_refuses_any_field_of_the_wrong_type(name: str) -> None:
    record = vc.sign_decision(
        vc.SigningKey.generate(),
        request_id="r" * 32,
        subject_ref="a" * 64,
        match=False,
        key_id="k",
        client_nonce="n" * 24,
        probe_sha256="c" * 64,
    ).to_dict()
    assert DecisionRecord.from_dict(record).to_dict() == record
    wrong = "false" if name == "match" else 0
    for body in ({**record, name: wrong}, {key: value for key, value in record.items() if key != name}):
        with pytest.raises(vc.SignatureError, match=f"field '{name}'"):
            DecisionRecord.from_dict(body)
