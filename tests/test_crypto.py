"""The CKKS core against numpy, its refusals, and the protocol logic with the plaintext stand-in."""

from __future__ import annotations

import base64
import dataclasses
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tenseal as ts
import tenseal.sealapi as sealapi

import veilface.crypto as vc
from veilface.crypto import _ckks, _protocol
from veilface.crypto._seal_io import check_ciphertext_layout
from veilface.crypto.testing import blinded_values, compare_with_factors

MODEL = "test-model"


@pytest.fixture(scope="module", params=list(vc.PRESETS))
def keyset(request: pytest.FixtureRequest) -> vc.KeySet:
    return vc.key_ceremony(request.param, model_id=MODEL, dimension=512)


@pytest.fixture(scope="module")
def default_keys() -> vc.KeySet:
    return vc.key_ceremony(vc.DEFAULT_PRESET, model_id=MODEL, dimension=128)


def unit_vectors(rng: np.random.Generator, count: int, dim: int) -> np.ndarray:
    v = rng.normal(size=(count, dim))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def ckks_ciphers(keys: vc.KeySet) -> tuple[vc.CkksClientCipher, vc.CkksMatcherCipher, vc.CkksAuthorityCipher]:
    """The client's, the matcher's and the authority's CKKS ciphers under ``keys``, for 128-d ``MODEL``."""
    client = vc.CkksClientCipher(keys.public, model_id=MODEL, dimension=128)
    matcher = vc.CkksMatcherCipher(keys.evaluation, model_id=MODEL, dimension=128)
    return client, matcher, vc.CkksAuthorityCipher(keys.secret)


def correlated_pairs(seed: int, count: int, dim: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Pairs whose cosine similarity spreads over [-1, 1], like impostors and genuine faces."""
    rng = np.random.default_rng(seed)
    a, b = unit_vectors(rng, count, dim), unit_vectors(rng, count, dim)
    mix = rng.uniform(-1.0, 1.0, size=(count, 1))
    b = mix * a + np.sqrt(1 - mix**2) * b
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    yield from zip(a, b, strict=True)


# Tolerance on |decrypted score - numpy score|: docs/design.md §7 gives 7.6e-6 at N=4096; the larger preset is
# far more precise.
TOLERANCE = {"ckks-n4096-q60-49-d29": 2e-5, "ckks-n8192-q60-60-60-d40": 1e-7}


@pytest.mark.parametrize("dim", [128, 512])
def test_scores_match_numpy(keyset: vc.KeySet, dim: int) -> None:
    preset = keyset.public.preset
    desc_dim = keyset.description.dimension
    assert desc_dim == 512
    client = vc.CkksClientCipher(keyset.public, model_id=MODEL, dimension=dim)
    matcher = vc.CkksMatcherCipher(keyset.evaluation, model_id=MODEL, dimension=dim)
    authority = vc.CkksAuthorityCipher(keyset.secret)
    pairs = 200  # issue 2: at least 200 random pairs per preset and dimension
    errors, norm_errors, projections = [], [], []
    for i, (a, b) in enumerate(correlated_pairs(dim + len(preset), pairs, dim)):
        r = 1 + (i * 37) % _protocol.SCORE_BLINDING_LIMIT  # known factors so the test can undo the blinding
        threshold = 0.25
        blinded = compare_with_factors(matcher, client.encrypt(a), client.encrypt(b), threshold, [r])
        _, values = blinded_values(authority, blinded)
        errors.append(abs(values[-1] / r + threshold - float(a @ b)))
        norm_errors.append(abs(values[0]))  # |p|^2 - 1
        projections += values[1:-1]
    assert max(errors) < TOLERANCE[preset], max(errors)
    # The squared norm is exact up to the encryption's own noise, far inside the tolerance eps.
    assert max(norm_errors) < TOLERANCE[preset], max(norm_errors)
    # Projections of unit vectors onto directions of unit norm in the honest subspace: |<x, g>| <= 1, and
    # N(0, 1/d) in distribution (g is isotropic), so their variance shows they are projections of x.
    assert len(projections) == pairs * matcher.projections[vc.Purpose.VERIFY]
    assert max(map(abs, projections)) < _protocol.PROJECTION_BOUND
    # The directions are fresh secret randomness, so the sample variance of n values has a relative standard
    # deviation of sqrt(2 / n) (0.07 for the fewest, 400): the bounds sit 5 of those from 1 / d.
    spread = 5 * np.sqrt(2 / len(projections))
    assert (1 - spread) / dim < float(np.var(projections)) < (1 + spread) / dim


@pytest.mark.parametrize("dim", [128, 512])
def test_decisions_on_both_sides_of_threshold(default_keys: vc.KeySet, dim: int) -> None:
    keys = vc.key_ceremony(vc.DEFAULT_PRESET, model_id=MODEL, dimension=dim) if dim != 128 else default_keys
    client = vc.CkksClientCipher(keys.public, model_id=MODEL, dimension=dim)
    matcher = vc.CkksMatcherCipher(keys.evaluation, model_id=MODEL, dimension=dim)
    authority = vc.CkksAuthorityCipher(keys.secret)
    for a, b in correlated_pairs(7, 40, dim):
        score = float(a @ b)
        template, probe = client.encrypt(a), client.encrypt(b)
        for threshold, expected in ((score - 1e-3, vc.Outcome.MATCH), (score + 1e-3, vc.Outcome.NO_MATCH)):
            if -1.0 <= threshold <= 1.0:
                assert authority.decide(matcher.compare(template, probe, threshold)) == (
                    vc.Purpose.VERIFY,
                    expected,
                )


def _scaled_probe(client: vc.CkksClientCipher, vector: np.ndarray, factor: float) -> bytes:
    """Encrypt without the client's normalisation, as a dishonest or buggy client would."""
    original = _ckks.prepare_embedding
    try:
        _ckks.prepare_embedding = lambda emb, dim: np.asarray(emb, dtype=np.float64) * factor  # type: ignore[assignment]
        return client.encrypt(vector)
    finally:
        _ckks.prepare_embedding = original  # type: ignore[assignment]


@pytest.mark.parametrize("factor", [1.2, 0.8, 1.02])
def test_scaled_probe_is_refused(default_keys: vc.KeySet, factor: float) -> None:
    client, matcher, authority = ckks_ciphers(default_keys)
    a = unit_vectors(np.random.default_rng(1), 1, 128)[0]
    template = client.encrypt(a)
    scaled = _scaled_probe(client, a, factor)
    assert authority.decide(matcher.compare(template, scaled, 0.5))[1] is vc.Outcome.NOT_NORMALISED
    assert authority.decide(matcher.blind_norm(scaled)) == (vc.Purpose.ENROL, vc.Outcome.NOT_NORMALISED)
    # the honest probe of the same face passes both
    assert authority.decide(matcher.compare(template, client.encrypt(a), 0.5))[1] is vc.Outcome.MATCH
    assert authority.decide(matcher.blind_norm(template))[1] is vc.Outcome.NORMALISED


def _complex_probe(client: vc.CkksClientCipher, slots: np.ndarray) -> bytes:
    """A probe whose slots are complex, given per dimension and replicated as the client does: what a client
    writing its own encoder could send."""
    plain, ciphertext = sealapi.Plaintext(), sealapi.Ciphertext(client._seal)
    replicated = _ckks.replicate(slots.real, client._n // 2) + 1j * _ckks.replicate(slots.imag, client._n // 2)
    client._encoder.encode(replicated.tolist(), client._scale, plain)
    client._encryptor.encrypt(plain, ciphertext)
    header = {
        "scheme": "ckks",
        "encoding": "replicated",
        "key_id": client.key_id,
        "model_id": MODEL,
        "dimension": 128,
        "preset": client.preset,
    }
    payload = client._files.ciphertext_bytes(ciphertext)
    return vc.Envelope(vc.EnvelopeKind.EMBEDDING, header, payload).to_bytes()


def test_imaginary_parts_cannot_hide_a_scaled_probe(default_keys: vc.KeySet) -> None:
    """Sum Re(z^2) = |x|^2 - |y|^2 would pass a 1.2x probe with |y|^2 = 0.44; |p|^2 = sum |p_k|^2 does not."""
    client, matcher, authority = ckks_ciphers(default_keys)
    rng = np.random.default_rng(8)
    x, y = unit_vectors(rng, 2, 128)
    template = client.encrypt(x)
    honest = _complex_probe(client, x + 0j)
    assert authority.decide(matcher.compare(template, honest, 0.9))[1] is vc.Outcome.MATCH
    disguised = _complex_probe(client, 1.2 * x + 1j * np.sqrt(0.44) * y)
    for _ in range(5):
        assert authority.decide(matcher.compare(template, disguised, 0.9))[1] is vc.Outcome.NOT_NORMALISED
        assert authority.decide(matcher.blind_norm(disguised))[1] is vc.Outcome.NOT_NORMALISED


def test_huge_probe_that_wraps_around_q_is_refused(default_keys: vc.KeySet) -> None:
    """Scaled far enough, the blinded value wraps mod q and its sign is a coin toss; the bounds catch it."""
    client, matcher, authority = ckks_ciphers(default_keys)
    x = unit_vectors(np.random.default_rng(9), 1, 128)[0]
    template = client.encrypt(x)
    outcomes = set()
    for factor in (30.0, 100.0, 300.0, 1000.0):
        probe = _scaled_probe(client, x, factor)
        for _ in range(5):
            outcomes.add(authority.decide(matcher.compare(template, probe, 0.5))[1])
    assert outcomes == {vc.Outcome.NOT_NORMALISED}


def test_unnormalised_probe_is_refused(default_keys: vc.KeySet) -> None:
    client, matcher, authority = ckks_ciphers(default_keys)
    raw = np.random.default_rng(2).normal(size=128)  # |raw|^2 ~ 128
    template = client.encrypt(raw)
    probe = _scaled_probe(client, raw, 1.0)
    assert authority.decide(matcher.compare(template, probe, 0.5))[1] is vc.Outcome.NOT_NORMALISED


def test_blinding_is_fresh(default_keys: vc.KeySet) -> None:
    client, matcher, authority = ckks_ciphers(default_keys)
    a, b = unit_vectors(np.random.default_rng(3), 2, 128)
    template, probe = client.encrypt(a), client.encrypt(b)
    first = matcher.compare(template, probe, 0.1)
    second = matcher.compare(template, probe, 0.1)
    assert first != second
    values = [blinded_values(authority, first)[1], blinded_values(authority, second)[1]]
    # The score's sign agrees: blinding changes its magnitude, never the decision. The norm is the same up to
    # noise; the projections are onto fresh directions.
    assert values[0][-1] != values[1][-1] and (values[0][-1] > 0) == (values[1][-1] > 0)
    assert abs(values[0][0] - values[1][0]) < 1e-4
    assert set(values[0][1:-1]).isdisjoint(values[1][1:-1])


def test_blinding_factors_are_log_uniform() -> None:
    draws = [_protocol.blinding_factor() for _ in range(4000)]
    assert min(draws) >= 1 and max(draws) <= _protocol.SCORE_BLINDING_LIMIT == 1000
    # log-uniform: about half the draws fall below sqrt(1000) ~ 32; uniform r would put 3% there.
    below = sum(r < 32 for r in draws) / len(draws)
    assert 0.45 < below < 0.55


def test_secret_gaussians_are_standard_normal() -> None:
    draws = _protocol.secret_gaussians(200_001)
    assert draws.shape == (200_001,)
    assert abs(float(draws.mean())) < 0.01 and abs(float(draws.std()) - 1) < 0.01
    assert abs(float(np.mean(np.abs(draws) < 1)) - 0.6827) < 0.005
    assert not np.array_equal(_protocol.secret_gaussians(8), _protocol.secret_gaussians(8))


def _ntt_values(plain: sealapi.Plaintext, n: int) -> list[int]:
    return [plain.data(i) for i in range(n)]


def _monomial_ntt(k: int, q: int, n: int) -> list[int]:
    """SEAL's NTT of X^k (0 <= k < N) at the default preset's data prime.

    It comes from a BFV context over the same primes (same NTT tables): CKKS has no public way to build a
    plaintext from chosen coefficients.
    """
    parms = sealapi.EncryptionParameters(sealapi.SCHEME_TYPE.BFV)
    parms.set_poly_modulus_degree(n)
    parms.set_coeff_modulus(sealapi.CoeffModulus.Create(n, [60, 49]))
    parms.set_plain_modulus(65537)
    bfv = sealapi.SEALContext(parms, True, sealapi.SEC_LEVEL_TYPE.TC128)
    assert bfv.first_context_data().parms().coeff_modulus()[0].value() == q
    monomial = sealapi.Plaintext(f"1x^{k}" if k else "1")
    sealapi.Evaluator(bfv).transform_to_ntt_inplace(monomial, bfv.first_parms_id())
    return [monomial.data(i) for i in range(n)]


def _coefficients(ntt: list[int], positions: list[int], q: int) -> list[int]:
    """Coefficient k of m is N^-1 * <ntt(m), ntt(X^-k)>, with X^-k = -X^(N-k) (negacyclic)."""
    n = len(ntt)
    n_inv = pow(n, -1, q)
    out = []
    for k in positions:
        weights = [w if k == 0 else (q - w) % q for w in _monomial_ntt(n - k if k else 0, q, n)]
        out.append(sum(v * w for v, w in zip(ntt, weights, strict=True)) * n_inv % q)
    return out


def _decrypted(authority: vc.CkksAuthorityCipher, ciphertext: sealapi.Ciphertext) -> list[int]:
    seal = authority.context.seal_context().data
    plain = sealapi.Plaintext()
    sealapi.Decryptor(seal, authority.context.secret_key().data).decrypt(ciphertext, plain)
    return _ntt_values(plain, authority._n)


def _checks_ciphertext(
    matcher: vc.CkksMatcherCipher, template: bytes, probe: bytes, factor: int, threshold: float
) -> sealapi.Ciphertext:
    """What compare() holds before compacting: factor (2 <t, p> - 2 threshold) at 0 and |p|^2 - 1 at N/2."""
    opened_probe = matcher._open(probe)
    score = sealapi.Ciphertext(matcher._seal)
    matcher._evaluator.multiply(matcher._open(template).ciphertext, opened_probe.ciphertext, score)
    matcher._evaluator.relinearize_inplace(score, matcher._relin_keys)
    held = sealapi.Ciphertext(matcher._seal)
    matcher._evaluator.complex_conjugate(score, matcher._conjugation_keys, held)
    matcher._evaluator.add_inplace(held, score)
    held = matcher._shifted(held, 2 * threshold, factor=factor)
    norm = matcher._shifted(matcher._norm(opened_probe), 1.0)
    matcher._evaluator.multiply_plain_inplace(norm, matcher._half.plain)
    matcher._evaluator.add_inplace(held, norm)
    return held


def test_compact_form_decrypts_exactly_coefficients_0_and_n_over_2(default_keys: vc.KeySet) -> None:
    client, matcher, authority = ckks_ciphers(default_keys)
    a, b = unit_vectors(np.random.default_rng(4), 2, 128)
    held = _checks_ciphertext(matcher, client.encrypt(a), client.encrypt(b), 7, 0.2)
    q, n = matcher._primes[0], 4096
    unit = 2 * 2.0**58 / n  # one unit of <t, p> in the coefficients of a product
    exact = _coefficients(_decrypted(authority, held), [0, n // 2], q)
    compact = np.frombuffer(matcher._compact([held], [2]), dtype="<u8").reshape(1, 2 + n)
    readout = authority._read(compact, 2)
    assert [round(value * unit) % q for value in readout] == exact
    assert abs(readout[0] / 14 + 0.2 - float(a @ b)) < 2e-5  # the score, doubled
    assert abs(readout[1]) < 2e-5  # |p|^2 - 1


def test_a_mask_would_not_change_what_the_authority_receives(default_keys: vc.KeySet) -> None:
    """Issue 15, point 8: masking every coefficient but 0 and N/2 (as the matcher once did) changes the
    ciphertext but not one byte of its compact form, which is why there is no mask."""
    client, matcher, authority = ckks_ciphers(default_keys)
    a, b = unit_vectors(np.random.default_rng(5), 2, 128)
    held = _checks_ciphertext(matcher, client.encrypt(a), client.encrypt(b), 3, 0.5)
    # A mask: random coefficients 1 to 20, zero at 0 and N/2 (it could not touch those without changing the
    # decision).
    q, n = matcher._primes[0], 4096
    coefficients = [int(c) for c in np.random.default_rng(6).integers(1, q, size=20)]
    ntt = np.zeros(n, dtype=object)
    for k, c in enumerate(coefficients, start=1):
        ntt = (ntt + c * np.array(_monomial_ntt(k, q, n), dtype=object)) % q
    mask = matcher._files.plaintext_from_ntt(matcher._seal, matcher._parms_id, ntt.astype(np.uint64), held.scale)
    masked = sealapi.Ciphertext(matcher._seal)
    matcher._evaluator.add_plain(held, mask, masked)
    assert _coefficients(_ntt_values(mask, n), [0, 1, n // 2], q) == [0, coefficients[0], 0]
    assert _coefficients(_decrypted(authority, held), [1, 2], q) != _coefficients(
        _decrypted(authority, masked), [1, 2], q
    )
    assert matcher._compact([held], [2]) == matcher._compact([masked], [2])


def test_conjugation_reverses_the_ntt_values(keyset: vc.KeySet) -> None:
    """What ``_norm`` relies on: X -> X^-1 (complex conjugation of the slots) reverses each prime's NTT values."""
    matcher = vc.CkksMatcherCipher(keyset.evaluation, model_id=MODEL, dimension=128)
    n, primes = matcher._n, len(matcher._primes)
    z = np.random.default_rng(7).normal(size=(2, n // 2))
    plain, mirrored = sealapi.Plaintext(), sealapi.Plaintext()
    matcher._encoder.encode((z[0] + 1j * z[1]).tolist(), matcher._parms_id, 2.0**20, plain)
    matcher._encoder.encode((z[0] - 1j * z[1]).tolist(), matcher._parms_id, 2.0**20, mirrored)
    values = np.array(_ntt_values(plain, n * primes)).reshape(primes, n)
    assert np.array_equal(values[:, ::-1], np.array(_ntt_values(mirrored, n * primes)).reshape(primes, n))


def _slot_probe(client: vc.CkksClientCipher, slots: np.ndarray) -> bytes:
    """Any slot vector (all N/2 slots, complex), encrypted under the public key with an honest header."""
    plain, ciphertext = sealapi.Plaintext(), sealapi.Ciphertext(client._seal)
    client._encoder.encode(np.asarray(slots, dtype=complex).tolist(), client._scale, plain)
    client._encryptor.encrypt(plain, ciphertext)
    header = _ckks._embedding_header(client)
    return vc.Envelope(vc.EnvelopeKind.EMBEDDING, header, client._files.ciphertext_bytes(ciphertext)).to_bytes()


def test_the_norm_is_exact_for_any_slot_vector(default_keys: vc.KeySet) -> None:
    """|p|^2 over real and imaginary parts of all slots, to the encryption's noise; conjugating the probe itself
    would cost ~1e-2 (key switching at scale Delta), as much as the tolerance."""
    client, matcher, authority = ckks_ciphers(default_keys)
    rng = np.random.default_rng(8)
    compact_errors, switched_errors = [], []
    for energy in (0.5, 1.0, 3.0, 100.0):
        slots = rng.normal(size=2048) + 1j * rng.normal(size=2048)
        slots *= np.sqrt(energy) / np.linalg.norm(slots)
        probe = matcher._open(_slot_probe(client, slots))
        norm = matcher._norm(probe)
        compact = np.frombuffer(matcher._compact([norm], [2]), dtype="<u8").reshape(1, 2 + 4096)
        value, half = authority._read(compact, 2)
        compact_errors.append(abs(value - energy) / energy)
        assert abs(half) < 1e-5 * energy  # real slots: coefficient N/2 is free for a second value
        conjugated, product = sealapi.Ciphertext(matcher._seal), sealapi.Ciphertext(matcher._seal)
        matcher._evaluator.complex_conjugate(probe.ciphertext, matcher._conjugation_keys, conjugated)
        matcher._evaluator.multiply(probe.ciphertext, conjugated, product)
        matcher._evaluator.relinearize_inplace(product, matcher._relin_keys)
        compact = np.frombuffer(matcher._compact([product], [1]), dtype="<u8").reshape(1, 1 + 4096)
        switched_errors.append(abs(authority._read(compact, 1)[0] - energy) / energy)
    assert max(compact_errors) < 2e-5, compact_errors
    assert max(switched_errors) > 1e-3, switched_errors


def test_projections_are_real_and_imaginary_parts_of_one_product(default_keys: vc.KeySet) -> None:
    """Coefficient 0 of p G is Re sum_k p_k G_k and coefficient N/2 is sum_k signs_k Im(p_k G_k), in units of
    Delta^2 2/N: two projections of (Re p, Im p) read from one plaintext multiply."""
    client, matcher, authority = ckks_ciphers(default_keys)
    rng = np.random.default_rng(9)
    for _ in range(3):
        p = (rng.normal(size=2048) + 1j * rng.normal(size=2048)) / 64
        g = (rng.normal(size=2048) + 1j * rng.normal(size=2048)) / 32
        plane, product = sealapi.Plaintext(), sealapi.Ciphertext(matcher._seal)
        matcher._encoder.encode(g.tolist(), matcher._parms_id, matcher._scale, plane)
        matcher._evaluator.multiply_plain(matcher._open(_slot_probe(client, p)).ciphertext, plane, product)
        compact = np.frombuffer(matcher._compact([product], [2]), dtype="<u8").reshape(1, 2 + 4096)
        read = authority._read(compact, 2)
        expected = [float(np.sum((p * g).real)), float(np.sum(matcher._half.signs * (p * g).imag))]
        assert np.allclose(read, expected, atol=1e-5), (read, expected)


def test_projection_planes_bound_every_honest_probe(default_keys: vc.KeySet) -> None:
    """Each plane's two projections, restricted to replicated real vectors, have norm at most 1 (one of them
    exactly 1): Cauchy-Schwarz keeps every honest projection within the bound."""
    for dim in (128, 512):
        matcher = vc.CkksMatcherCipher(default_keys.evaluation, model_id=MODEL, dimension=dim)
        for _ in range(5):
            plane = matcher._fresh_plane()
            g = _decoded(matcher, plane)
            lengths = [
                float(np.linalg.norm(_ckks.fold(g.real, dim))),
                float(np.linalg.norm(_ckks.fold(matcher._half.signs * g.imag, dim))),
            ]
            assert max(lengths) == pytest.approx(1.0, abs=1e-6) and min(lengths) > 0.7
            # Outside the honest subspace the plane is as long as inside, per dimension: isotropic.
            assert np.linalg.norm(g) ** 2 == pytest.approx(2048 * 2 / dim, rel=0.3)


def _decoded(matcher: vc.CkksMatcherCipher, plain: sealapi.Plaintext) -> np.ndarray:
    return np.array(matcher._encoder.decode_complex(plain))


def test_replicated_encoding_keeps_the_score(default_keys: vc.KeySet) -> None:
    for dim in (128, 100, 512):
        x, y = unit_vectors(np.random.default_rng(dim), 2, dim)
        rx, ry = _ckks.replicate(x, 2048), _ckks.replicate(y, 2048)
        assert float(rx @ ry) == pytest.approx(float(x @ y)) and float(rx @ rx) == pytest.approx(1.0)
        assert np.allclose(_ckks.fold(ry, dim), y)  # fold undoes replicate, and is its adjoint:
        v = np.random.default_rng(1).normal(size=2048)
        assert float(rx @ v) == pytest.approx(float(x @ _ckks.fold(v, dim)))


def test_the_period_and_the_projection_count(keyset: vc.KeySet) -> None:
    matcher = vc.CkksMatcherCipher(keyset.evaluation, model_id=MODEL, dimension=128)
    authority = vc.CkksAuthorityCipher(keyset.secret)
    assert matcher.period == authority.period and matcher.projections == authority.projections
    verify, enrol = matcher.projections[vc.Purpose.VERIFY], matcher.projections[vc.Purpose.ENROL]
    if keyset.public.preset == vc.DEFAULT_PRESET:
        assert 8191.9 < matcher.period < 8192 and (verify, enrol) == (4, 6)
        assert _protocol.wrap_pass_rate(128, matcher.period) ** 4 < 2e-4
        assert _protocol.wrap_pass_rate(512, matcher.period) ** 4 < 2e-3
        assert _protocol.wrap_pass_rate(512, matcher.period) ** 6 < 1e-4
    else:
        assert matcher.period > 2**51 and (verify, enrol) == (2, 2)
    # The authority service caps a blinded result at two ciphertexts' size: the compact forms stay under it.
    for purpose in vc.Purpose:
        assert authority.blinded_bytes(purpose) <= vc.Purpose.VERIFY.checks * authority.ciphertext_bytes


def test_stocked_randomness_is_used_once(default_keys: vc.KeySet) -> None:
    client, matcher, authority = ckks_ciphers(default_keys)
    a, b = unit_vectors(np.random.default_rng(6), 2, 128)
    template, probe = client.encrypt(a), client.encrypt(b)
    # One request's worth: an encryption of zero and a plane per two projections.
    assert matcher.replenish(1) == 1 and (len(matcher._zeros), len(matcher._planes)) == (1, 2)
    stocked = [*matcher._zeros, *matcher._planes]
    first = matcher.compare(template, probe, 0.3)
    assert not matcher._zeros and not matcher._planes  # all taken, none left to reuse
    second = matcher.compare(template, probe, 0.3)  # made on the spot
    assert first != second and len(stocked) == 3
    assert authority.decide(first) == authority.decide(second)
    assert matcher.replenish(3, batch=4) == 1 and (len(matcher._zeros), len(matcher._planes)) == (1, 3)
    assert matcher.replenish(3, batch=20) == 3 and (len(matcher._zeros), len(matcher._planes)) == (3, 6)
    matcher.blind_norm(template)  # an enrolment: six projections, three planes
    assert (len(matcher._zeros), len(matcher._planes)) == (2, 3)


# -- refusals -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def deployment(default_keys: vc.KeySet) -> tuple[vc.CkksClientCipher, vc.CkksMatcherCipher, bytes]:
    client = vc.CkksClientCipher(default_keys.public, model_id=MODEL, dimension=128)
    matcher = vc.CkksMatcherCipher(default_keys.evaluation, model_id=MODEL, dimension=128)
    probe = client.encrypt(unit_vectors(np.random.default_rng(5), 1, 128)[0])
    return client, matcher, probe


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda b: b[: len(b) // 2], id="truncated"),
        pytest.param(lambda b: b[:-1], id="one-byte-short"),
        pytest.param(lambda b: b + b"\0", id="one-byte-long"),
        pytest.param(lambda b: os.urandom(len(b)), id="random"),
        pytest.param(lambda b: b"", id="empty"),
        pytest.param(lambda b: b[:200] + os.urandom(len(b) - 200), id="random-payload"),
        pytest.param(lambda b: b[:-8] + b"\xff" * 8, id="coefficient-out-of-range"),
    ],
)
def test_bad_bytes_are_refused(deployment: tuple[vc.CkksClientCipher, vc.CkksMatcherCipher, bytes], mangle) -> None:  # type: ignore[no-untyped-def]
    _, matcher, probe = deployment
    with pytest.raises(vc.InvalidCiphertextError):
        matcher.check(mangle(probe))


@pytest.mark.parametrize(
    ("field", "builder"),
    [
        ("key_id", lambda: vc.key_ceremony(vc.DEFAULT_PRESET, model_id=MODEL, dimension=128)),
        ("model_id", None),
        ("dimension", None),
    ],
)
def test_other_deployment_is_refused(default_keys: vc.KeySet, field: str, builder) -> None:  # type: ignore[no-untyped-def]
    matcher = vc.CkksMatcherCipher(default_keys.evaluation, model_id=MODEL, dimension=128)
    vector = unit_vectors(np.random.default_rng(6), 1, 128)[0]
    if field == "key_id":
        other = vc.CkksClientCipher(builder().public, model_id=MODEL, dimension=128).encrypt(vector)
    elif field == "model_id":
        other = vc.CkksClientCipher(default_keys.public, model_id="other-model", dimension=128).encrypt(vector)
    else:
        other = vc.CkksClientCipher(default_keys.public, model_id=MODEL, dimension=64).encrypt(vector[:64])
    with pytest.raises(vc.InvalidCiphertextError) as info:
        matcher.check(other)
    assert info.value.field == field
    assert field in str(info.value)


def test_other_preset_is_refused(default_keys: vc.KeySet) -> None:
    big = vc.key_ceremony("ckks-n8192-q60-60-60-d40", model_id=MODEL, dimension=128)
    probe = vc.CkksClientCipher(big.public, model_id=MODEL, dimension=128).encrypt(np.ones(128))
    matcher = vc.CkksMatcherCipher(default_keys.evaluation, model_id=MODEL, dimension=128)
    with pytest.raises(vc.InvalidCiphertextError):
        matcher.check(probe)


def test_plaintext_stand_in_is_refused_by_ckks(default_keys: vc.KeySet) -> None:
    fake = vc.PlaintextClientCipher(key_id=default_keys.key_id, model_id=MODEL, dimension=128).encrypt(np.ones(128))
    matcher = vc.CkksMatcherCipher(default_keys.evaluation, model_id=MODEL, dimension=128)
    with pytest.raises(vc.InvalidCiphertextError) as info:
        matcher.check(fake)
    assert info.value.field == "scheme"


def test_layout_check_runs_before_seal(
    deployment: tuple[vc.CkksClientCipher, vc.CkksMatcherCipher, bytes],
) -> None:
    _, matcher, probe = deployment
    payload = vc.Envelope.from_bytes(probe, kind=vc.EnvelopeKind.EMBEDDING).payload
    with pytest.raises(vc.InvalidCiphertextError, match="scale"):
        check_ciphertext_layout(
            payload, parms_id=matcher._parms_id, poly_modulus_degree=4096, rns_primes=1, scale=2.0**30
        )


@pytest.mark.parametrize(
    "embedding",
    [np.zeros(128), np.full(128, np.nan), np.ones((2, 64)), np.ones(127), ["a"] * 128, np.full(128, np.inf)],
    ids=["zeros", "nan", "2-d", "wrong-dim", "strings", "inf"],
)
def test_bad_embeddings_are_refused(
    deployment: tuple[vc.CkksClientCipher, vc.CkksMatcherCipher, bytes], embedding
) -> None:  # type: ignore[no-untyped-def]
    client, _, _ = deployment
    with pytest.raises(vc.InvalidEmbeddingError):
        client.encrypt(embedding)


def test_messages_hold_no_values(deployment: tuple[vc.CkksClientCipher, vc.CkksMatcherCipher, bytes]) -> None:
    client, _, _ = deployment
    secret_value = 0.123456789
    vector = np.full(127, secret_value)
    with pytest.raises(vc.InvalidEmbeddingError) as info:
        client.encrypt(vector)
    assert "0.1234" not in str(info.value)


# -- keys, bundles, signatures --------------------------------------------------------------------------


def test_evaluation_and_public_contexts_are_not_private(default_keys: vc.KeySet) -> None:
    for bundle in (default_keys.evaluation, default_keys.public):
        context = ts.context_from(bundle.context)
        assert not context.is_private()
        assert not context.has_galois_keys()
    assert ts.context_from(default_keys.secret.context).is_private()
    # The matcher's key-switching keys: relinearisation and conjugation only, no rotation.
    matcher = vc.CkksMatcherCipher(default_keys.evaluation, model_id=MODEL, dimension=128)
    assert matcher._relin_keys.size() == 1
    assert matcher._conjugation_keys.size() == 1 and matcher._conjugation_keys.has_key(2 * 4096 - 1)
    assert not matcher._conjugation_keys.has_key(3)  # the Galois element of a rotation by one slot
    assert default_keys.evaluation.size < 256 * 1024
    with pytest.raises(vc.ConfigurationError, match="conjugation"):
        vc.CkksMatcherCipher(
            dataclasses.replace(default_keys.evaluation, conjugation_keys=b""), model_id=MODEL, dimension=128
        )


def test_matcher_refuses_a_secret_key(default_keys: vc.KeySet) -> None:
    with pytest.raises(vc.ConfigurationError):
        vc.CkksMatcherCipher(default_keys.secret, model_id=MODEL, dimension=128)
    smuggled = dataclasses.replace(default_keys.secret, role=vc.Role.EVALUATION)
    with pytest.raises(vc.ConfigurationError, match="secret key"):
        vc.CkksMatcherCipher(smuggled, model_id=MODEL, dimension=128)


def test_bundle_round_trip_and_key_id(default_keys: vc.KeySet) -> None:
    for bundle in (default_keys.secret, default_keys.evaluation, default_keys.public):
        again = vc.KeyBundle.from_parts(
            bundle.context,
            bundle.meta(),
            role=bundle.role,
            relin_keys=bundle.relin_keys,
            conjugation_keys=bundle.conjugation_keys,
        )
        assert again == bundle
    assert len({b.key_id for b in (default_keys.secret, default_keys.evaluation, default_keys.public)}) == 1
    forged = dataclasses.replace(default_keys.public, key_id="0" * 32)
    with pytest.raises(vc.ConfigurationError, match="key_id"):
        vc.CkksClientCipher(forged, model_id=MODEL, dimension=128)
    with pytest.raises(vc.ConfigurationError, match="format version"):
        vc.KeyBundle.from_parts(b"", {**default_keys.public.meta(), "format_version": 99}, role=vc.Role.PUBLIC)
    with pytest.raises(vc.ConfigurationError, match="does not parse"):
        vc.CkksClientCipher(dataclasses.replace(default_keys.public, context=b"junk"), model_id=MODEL, dimension=1)


def test_public_bundle_signature(default_keys: vc.KeySet) -> None:
    authority_key = default_keys.signing_key.verify_key
    vc.verify_public_bundle(default_keys.public, default_keys.description, default_keys.signature, authority_key)
    stranger = vc.SigningKey.generate().verify_key
    with pytest.raises(vc.SignatureError):
        vc.verify_public_bundle(default_keys.public, default_keys.description, default_keys.signature, stranger)
    other = vc.key_ceremony(vc.DEFAULT_PRESET, model_id=MODEL, dimension=128)
    # a dishonest matcher hands out its own CKKS key under the authority's old signature
    with pytest.raises(vc.SignatureError):
        vc.verify_public_bundle(other.public, default_keys.description, default_keys.signature, authority_key)
    relabelled = dataclasses.replace(default_keys.description, model_id="other")
    with pytest.raises(vc.SignatureError):
        vc.verify_public_bundle(default_keys.public, relabelled, default_keys.signature, authority_key)
    with pytest.raises(vc.SignatureError):
        vc.verify_public_bundle(default_keys.public, default_keys.description, "not base64!", authority_key)


def test_signing_key_pem_round_trip() -> None:
    key = vc.SigningKey.generate()
    again = vc.SigningKey.from_pem(key.to_pem())
    assert again.verify_key == key.verify_key
    assert vc.VerifyKey.from_pem(key.verify_key.to_pem()) == key.verify_key
    assert key.verify_key.fingerprint.startswith("SHA256:")
    assert "PRIVATE" not in repr(key)
    with pytest.raises(vc.ConfigurationError):
        vc.VerifyKey.from_pem(b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")


def test_presets_are_checked() -> None:
    for preset in vc.PRESETS.values():
        assert preset.is_secure
        preset.check()
    insecure = vc.Preset("ckks-n2048-q60-49-d28", 2048, (60, 49), 28)
    with pytest.raises(vc.ConfigurationError, match="128-bit"):
        insecure.check()
    assert insecure.check(allow_insecure=True) is insecure
    too_fine = vc.Preset("ckks-n4096-q60-49-d30", 4096, (60, 49), 30)
    with pytest.raises(vc.ConfigurationError, match="room"):
        too_fine.check()
    with pytest.raises(vc.ConfigurationError, match="unknown preset"):
        vc.get_preset("nope")


def test_insecure_preset_cannot_make_keys() -> None:
    from veilface.crypto._keys import make_context

    insecure = vc.Preset("ckks-n2048-q60-49-d28", 2048, (60, 49), 28)
    with pytest.raises(vc.ConfigurationError):
        make_context(insecure)
    with pytest.raises(vc.ConfigurationError):
        make_context(insecure, allow_insecure=True)  # TenSEAL refuses whatever we allow


# -- decision records -----------------------------------------------------------------------------------


def _record(key: vc.SigningKey) -> vc.DecisionRecord:
    return vc.sign_decision(
        key,
        request_id="req-1",
        subject_ref="ref",
        match=True,
        key_id="kid",
        client_nonce="nonce-0123456789abcdef",
        probe_sha256="ab" * 32,
    ).with_subject("alice")


def test_decision_record_verifies_and_round_trips() -> None:
    key = vc.SigningKey.generate()
    record = _record(key)
    vc.verify_decision(record, key.verify_key, client_nonce="nonce-0123456789abcdef", probe_sha256="ab" * 32)
    again = vc.DecisionRecord.from_dict(record.to_dict())
    assert again == record
    vc.verify_decision(again, key.verify_key)


@pytest.mark.parametrize(
    "change",
    [
        {"match": False},
        {"request_id": "req-2"},
        {"key_id": "other"},
        {"client_nonce": "another-nonce-0000"},
        {"probe_sha256": "cd" * 32},
        {"subject_ref": "someone-else"},
        {"issued_at": "2001-01-01T00:00:00.000Z"},
    ],
)
def test_altered_decision_fails(change: dict[str, object]) -> None:
    key = vc.SigningKey.generate()
    altered = dataclasses.replace(_record(key), **change)  # type: ignore[arg-type]
    with pytest.raises(vc.SignatureError):
        vc.verify_decision(altered, key.verify_key)


def test_forged_decision_fails() -> None:
    key, forger = vc.SigningKey.generate(), vc.SigningKey.generate()
    with pytest.raises(vc.SignatureError):
        vc.verify_decision(_record(forger), key.verify_key)
    record = _record(key)
    with pytest.raises(vc.SignatureError, match="nonce"):
        vc.verify_decision(record, key.verify_key, client_nonce="mine-0000000000000")
    with pytest.raises(vc.SignatureError, match="probe"):
        vc.verify_decision(record, key.verify_key, probe_sha256="00" * 32)
    bad_sig = dataclasses.replace(record, signature=base64.b64encode(b"x" * 64).decode())
    with pytest.raises(vc.SignatureError):
        vc.verify_decision(bad_sig, key.verify_key)
    with pytest.raises(vc.SignatureError):
        vc.DecisionRecord.from_dict({**record.to_dict(), "match": "yes"})


# -- the protocol, run twice: plaintext stand-in and CKKS -----------------------------------------------


@pytest.fixture(scope="module", params=["plaintext", "ckks"])
def ciphers(request: pytest.FixtureRequest, default_keys: vc.KeySet):  # type: ignore[no-untyped-def]
    if request.param == "plaintext":
        kwargs = {"key_id": "k", "model_id": MODEL, "dimension": 128}
        return (
            vc.PlaintextClientCipher(**kwargs),
            vc.PlaintextMatcherCipher(**kwargs),
            vc.PlaintextAuthorityCipher(**kwargs),
        )
    return (
        vc.CkksClientCipher(default_keys.public, model_id=MODEL, dimension=128),
        vc.CkksMatcherCipher(default_keys.evaluation, model_id=MODEL, dimension=128),
        vc.CkksAuthorityCipher(default_keys.secret),
    )


def test_protocol_against_numpy(ciphers) -> None:  # type: ignore[no-untyped-def]
    client, matcher, authority = ciphers
    for a, b in correlated_pairs(11, 30, 128):
        expected = vc.Outcome.MATCH if a @ b > 0.3 else vc.Outcome.NO_MATCH
        if abs(a @ b - 0.3) < 1e-4:
            continue
        assert authority.decide(matcher.compare(client.encrypt(a), client.encrypt(b), 0.3))[1] is expected


def test_protocol_refuses_mixed_purposes(ciphers) -> None:  # type: ignore[no-untyped-def]
    client, matcher, authority = ciphers
    template = client.encrypt(np.ones(128))
    blinded = vc.Envelope.from_bytes(matcher.blind_norm(template), kind=vc.EnvelopeKind.BLINDED)
    relabelled = vc.Envelope(blinded.kind, {**blinded.header, "purpose": "verify"}, blinded.payload).to_bytes()
    with pytest.raises(vc.InvalidCiphertextError):
        authority.decide(relabelled)
    with pytest.raises(vc.InvalidCiphertextError):
        authority.decide(template)  # an embedding is not a blinded result
    with pytest.raises(vc.InvalidEmbeddingError):
        matcher.compare(template, template, 1.5)


def test_crypto_is_pure() -> None:
    """crypto/ imports neither client/ nor server/, nor any network library."""
    import subprocess
    import sys

    code = (
        "import sys, veilface.crypto;"
        "bad=[m for m in sys.modules"
        " if m.startswith(('veilface.client','veilface.server','httpx','fastapi'))];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_public_surface_is_curated() -> None:
    assert sorted(vc.__all__) == sorted(set(vc.__all__))
    for name in vc.__all__:
        assert hasattr(vc, name), name
    assert not any(name.startswith("_") for name in vc.__all__)


def test_the_wrap_point_passes_the_norm_and_fails_the_projections(keyset: vc.KeySet) -> None:
    """Values live mod q: at the default preset a probe scaled by sqrt(1 + M), M = q / (Delta^2 2/N) ~ 8192,
    has |p|^2 - 1 = M, which reads as 0 and passes the norm check (the first assertion shows the wrap is
    real); its projections, ~sqrt(M / d) in size, refuse it. At the larger preset M = 2^52 is out of reach of
    any double: a probe scaled that far is refused all the same."""
    dim = 512
    x, y = unit_vectors(np.random.default_rng(12), 2, dim)
    y = y - (y @ x) * x
    impostor = 0.3 * x + np.sqrt(1 - 0.09) * y / np.linalg.norm(y)  # unit, cosine 0.3 with x: below 0.5
    keys = vc.key_ceremony(keyset.public.preset, model_id=MODEL, dimension=dim)
    client = vc.CkksClientCipher(keys.public, model_id=MODEL, dimension=dim)
    matcher = vc.CkksMatcherCipher(keys.evaluation, model_id=MODEL, dimension=dim)
    authority = vc.CkksAuthorityCipher(keys.secret)
    template = client.encrypt(x)
    factor = float(np.sqrt(1 + matcher.period))
    outcomes, norms = [], []
    for _ in range(20):
        blinded = matcher.compare(template, _scaled_probe(client, impostor, factor), 0.5)
        norms.append(blinded_values(authority, blinded)[1][0])
        outcomes.append(authority.decide(blinded)[1])
    if keyset.public.preset == vc.DEFAULT_PRESET:
        assert max(map(abs, norms)) < 1e-3  # wrapped to 1
    # A wrapped probe passes all four fresh projections with probability ~0.2^4 = 1.6e-3 at 512-D (a rate,
    # not an impossibility: README, known limits), so 3 or more of 20 passing has probability ~5e-6.
    assert outcomes.count(vc.Outcome.NOT_NORMALISED) >= 18
    assert set(outcomes) <= {vc.Outcome.NOT_NORMALISED, vc.Outcome.MATCH}


def test_unknown_envelope_fields_are_refused(
    deployment: tuple[vc.CkksClientCipher, vc.CkksMatcherCipher, bytes],
) -> None:
    _, matcher, probe = deployment
    envelope = vc.Envelope.from_bytes(probe, kind=vc.EnvelopeKind.EMBEDDING)
    padded = vc.Envelope(envelope.kind, {**envelope.header, "padding": "x" * 300}, envelope.payload).to_bytes()
    with pytest.raises(vc.InvalidCiphertextError, match="unknown fields"):
        matcher.check(padded)


def test_orphaned_seal_directories_are_removed(tmp_path: Path) -> None:
    from veilface.crypto import _seal_io

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = tmp_path / f"veilface-seal-{dead.stdout.strip()}-abc"
    alive = tmp_path / f"veilface-seal-{os.getpid()}-def"
    orphan.mkdir()
    alive.mkdir()
    _seal_io._remove_orphans(str(tmp_path))
    assert not orphan.exists() and alive.exists()


def test_authority_refuses_malformed_blinded_results(default_keys: vc.KeySet) -> None:
    client, matcher, authority = ckks_ciphers(default_keys)
    template = client.encrypt(np.ones(128))
    blinded = vc.Envelope.from_bytes(matcher.compare(template, template, 0.5), kind=vc.EnvelopeKind.BLINDED)
    assert len(blinded.payload) == authority.blinded_bytes(vc.Purpose.VERIFY)
    # The checks' ciphertext (score and norm) and two projections each in the others, compact: 98,352 bytes.
    assert len(blinded.payload) == 3 * authority.compact_bytes(2) == 98_352
    enrolment = vc.Envelope.from_bytes(matcher.blind_norm(template), kind=vc.EnvelopeKind.BLINDED)
    assert len(enrolment.payload) == authority.compact_bytes(1) + 3 * authority.compact_bytes(2) == 131_128
    for payload in (
        blinded.payload[:-8],
        blinded.payload + b"\0" * 8,
        b"\xff" * len(blinded.payload),  # every value outside the modulus
        blinded.payload[:8] + b"\xff" * 8 + blinded.payload[16:],
    ):
        with pytest.raises(vc.InvalidCiphertextError):
            authority.decide(vc.Envelope(blinded.kind, blinded.header, payload).to_bytes())


def test_ciphertexts_made_before_replication_are_refused(
    deployment: tuple[vc.CkksClientCipher, vc.CkksMatcherCipher, bytes],
) -> None:
    """Zero-padded ciphertexts (no ``encoding`` in the header) would score wrongly against replicated ones."""
    _, matcher, probe = deployment
    envelope = vc.Envelope.from_bytes(probe, kind=vc.EnvelopeKind.EMBEDDING)
    header = {name: value for name, value in envelope.header.items() if name != "encoding"}
    with pytest.raises(vc.InvalidCiphertextError) as info:
        matcher.check(vc.Envelope(envelope.kind, header, envelope.payload).to_bytes())
    assert info.value.field == "encoding"


def test_the_largest_blinded_score_stays_below_q_over_2(default_keys: vc.KeySet) -> None:
    """The score is read doubled: 2 r (s - threshold) with r at its limit and |s - threshold| = 2 must not wrap."""
    client, matcher, authority = ckks_ciphers(default_keys)
    x = unit_vectors(np.random.default_rng(13), 1, 128)[0]
    limit = _protocol.SCORE_BLINDING_LIMIT
    for probe, threshold, expected in ((x, -1.0, vc.Outcome.MATCH), (-x, 1.0, vc.Outcome.NO_MATCH)):
        blinded = compare_with_factors(matcher, client.encrypt(x), client.encrypt(probe), threshold, [limit])
        _, values = blinded_values(authority, blinded)
        assert values[-1] == pytest.approx(limit * 2.0 * np.sign(-threshold), abs=0.05)
        assert authority.decide(blinded) == (vc.Purpose.VERIFY, expected)


def test_a_transparent_probe_is_an_invalid_ciphertext(
    deployment: tuple[vc.CkksClientCipher, vc.CkksMatcherCipher, bytes],
) -> None:
    """c1 = 0 parses, but SEAL refuses to compute on it: the matcher says invalid ciphertext, not a crash."""
    _, matcher, probe = deployment
    envelope = vc.Envelope.from_bytes(probe, kind=vc.EnvelopeKind.EMBEDDING)
    data = bytearray(envelope.payload)
    np.frombuffer(data, dtype="<u8", offset=len(data) - 8 * 4096)[:] = 0
    transparent = vc.Envelope(envelope.kind, envelope.header, bytes(data)).to_bytes()
    for blind in (lambda: matcher.compare(probe, transparent, 0.5), lambda: matcher.blind_norm(transparent)):
        with pytest.raises(vc.InvalidCiphertextError, match="transparent"):
            blind()
