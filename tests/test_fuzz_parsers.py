"""Every parser under hypothesis: whatever the bytes or values, only its documented exception type (issue 8).

The targets (seeds, strategies, allowed exceptions) live in ``veilface.bench.harness.fuzz`` so that ``veilface bench
reliability`` runs the same ones with many more examples. VEILFACE_FUZZ_EXAMPLES raises the count here.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import veilface.crypto as vc
from veilface.bench.harness.fuzz import ParserTarget, parser_targets, run_parser_target
from veilface.server.keystore import read_bundle, read_public_description, write_keyset

EXAMPLES = int(os.environ.get("VEILFACE_FUZZ_EXAMPLES", "150"))
TARGETS = (
    "envelope",
    "ckks-template",
    "ckks-probe",
    "blinded-result",
    "plaintext-stand-in",
    "bundle-meta",
    "bundle-context",
    "evaluation-keys",
    "key-files",
    "public-description",
    "decision-record",
    "wire-answer",
    "client-answers",
    "image",
)


@pytest.fixture(scope="module")
def targets(keyset: vc.KeySet, tmp_path_factory: pytest.TempPathFactory) -> dict[str, ParserTarget]:
    return {target.name: target for target in parser_targets(keyset, tmp_path_factory.mktemp("fuzz"))}


def test_every_parser_is_a_target(targets: dict[str, ParserTarget]) -> None:
    assert tuple(targets) == TARGETS


@pytest.mark.parametrize("name", TARGETS)
def test_parsers_raise_only_their_documented_errors(targets: dict[str, ParserTarget], name: str) -> None:
    cases = run_parser_target(targets[name], EXAMPLES)
    print(f"{name}: {cases} cases")
    assert cases >= EXAMPLES


@pytest.mark.parametrize("field", ["dimension", "format_version"])
@pytest.mark.parametrize("value", [math.inf, -math.inf])
def test_a_description_with_an_infinite_number_is_refused(keyset: vc.KeySet, field: str, value: float) -> None:
    """Python's json reads Infinity; int() of it raised OverflowError, past the parser's own error type."""
    with pytest.raises(vc.SignatureError, match="incomplete"):
        vc.PublicDescription.from_dict({**keyset.description.to_dict(), field: value})


def test_a_key_file_that_is_not_utf8_is_refused(keyset: vc.KeySet, tmp_path: Path) -> None:
    """A meta.json of arbitrary bytes raised UnicodeDecodeError instead of naming the file."""
    write_keyset(tmp_path / "keys", keyset)
    (tmp_path / "keys" / "public" / "meta.json").write_bytes(b"\x80{}")
    with pytest.raises(vc.ConfigurationError, match=r"meta\.json is not valid JSON"):
        read_bundle(tmp_path / "keys", vc.Role.PUBLIC)


def test_a_key_file_with_an_incomplete_description_is_refused(keyset: vc.KeySet, tmp_path: Path) -> None:
    """Raised SignatureError, which `veilface serve` does not catch (a traceback instead of one Error: line)."""
    write_keyset(tmp_path / "keys", keyset)
    meta_path = tmp_path / "keys" / "public" / "meta.json"
    meta = json.loads(meta_path.read_text())
    del meta["description"]["dimension"]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(vc.ConfigurationError, match="description is incomplete"):
        read_public_description(tmp_path / "keys")


finite = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**53), 2**53), st.floats(allow_nan=False), st.text(max_size=20)
)


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    kind=st.sampled_from(vc.EnvelopeKind),
    header=st.dictionaries(st.text(max_size=20), finite, max_size=6),
    payload=st.binary(max_size=300),
)
def test_envelopes_round_trip(kind: vc.EnvelopeKind, header: dict[str, object], payload: bytes) -> None:
    data = vc.Envelope(kind, header, payload).to_bytes()
    if len(data) - len(payload) - 8 > 1024:
        with pytest.raises(vc.InvalidCiphertextError):
            vc.Envelope.from_bytes(data, kind=kind)
        return
    assert vc.Envelope.from_bytes(data, kind=kind) == vc.Envelope(kind, header, payload)
