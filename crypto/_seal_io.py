"""The one place that knows SEAL's serialisation format.

SEAL's ``save``/``load`` (as exposed by ``tenseal.sealapi``) take file paths and always compress with
zstd, which does not shrink 60-bit coefficients. On the wire veilface carries SEAL's *uncompressed*
format instead: its length is fixed by the parameters, so a parser can check it exactly before SEAL sees
a byte, and there is no decompression bomb to defuse. Files live in a private directory in memory
(``/dev/shm`` where available) and are removed as soon as they are read.
"""

from __future__ import annotations

import atexit
import itertools
import os
import shutil
import struct
import tempfile
import threading
from typing import Any

import numpy as np
import tenseal.sealapi as sealapi
import zstandard

from ._errors import InvalidCiphertextError

SEAL_MAGIC = b"\x5e\xa1"
SEAL_HEADER_SIZE = 16
COMPR_NONE = 0
COMPR_ZSTD = 2
_PARMS_ID = struct.Struct("<4Q")
# Ciphertext members after the header: parms_id, is_ntt_form, size, N, L, scale, correction_factor.
_CT_MEMBERS = struct.Struct("<4QBQQQdQ")
_PT_MEMBERS = struct.Struct("<4QQd")
_DYN_SIZE = struct.Struct("<Q")


_DIR_PREFIX = "veilface-seal-"


def _private_dir() -> str:
    shm = "/dev/shm"  # noqa: S108 (mkdtemp below makes a private 0700 directory in it)
    base = shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else tempfile.gettempdir()
    _remove_orphans(base)
    path = tempfile.mkdtemp(prefix=f"{_DIR_PREFIX}{os.getpid()}-", dir=base)
    atexit.register(shutil.rmtree, path, True)
    return path


def _remove_orphans(base: str) -> None:
    """Directories left by killed processes (no atexit after SIGKILL): remove those whose pid is gone."""
    for name in os.listdir(base):
        pid_text = name[len(_DIR_PREFIX) :].partition("-")[0]
        if not name.startswith(_DIR_PREFIX) or not pid_text.isdigit():
            continue
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)
        except PermissionError:
            pass  # alive, another user's


class SealFiles:
    """Moves SEAL objects to and from bytes through a private in-memory directory."""

    def __init__(self) -> None:
        self._dir = _private_dir()
        self._counter = itertools.count()
        self._lock = threading.Lock()
        self._version: bytes | None = None

    def _path(self) -> str:
        with self._lock:
            n = next(self._counter)
        return os.path.join(self._dir, f"{os.getpid()}-{threading.get_ident()}-{n}.bin")

    def save(self, obj: Any) -> bytes:
        """SEAL's own ``save`` output (zstd-compressed)."""
        path = self._path()
        try:
            obj.save(path)
            with open(path, "rb") as fh:
                return fh.read()
        finally:
            _unlink(path)

    def load(self, obj: Any, context: Any, data: bytes) -> None:
        path = self._path()
        try:
            with open(path, "wb") as fh:
                fh.write(data)
            obj.load(context, path)
        finally:
            _unlink(path)

    def version_bytes(self) -> bytes:
        """SEAL's header version bytes (major, minor), learned from this build of SEAL."""
        if self._version is None:
            saved = self.save(sealapi.Plaintext())
            self._version = saved[3:5]
        return self._version

    def header(self, body_len: int) -> bytes:
        return (
            SEAL_MAGIC
            + bytes([SEAL_HEADER_SIZE])
            + self.version_bytes()
            + bytes([COMPR_NONE])
            + b"\x00\x00"
            + struct.pack("<Q", SEAL_HEADER_SIZE + body_len)
        )

    def uncompressed(self, saved: bytes) -> bytes:
        """Turn SEAL's zstd ``save`` output into the equivalent uncompressed SEAL bytes."""
        if len(saved) < SEAL_HEADER_SIZE or saved[:2] != SEAL_MAGIC:
            raise InvalidCiphertextError("not a SEAL object")
        if saved[5] == COMPR_NONE:
            return saved
        if saved[5] != COMPR_ZSTD:
            raise InvalidCiphertextError("unsupported SEAL compression mode")
        body = zstandard.ZstdDecompressor().decompressobj().decompress(saved[SEAL_HEADER_SIZE:])
        return self.header(len(body)) + body

    def ciphertext_bytes(self, ciphertext: sealapi.Ciphertext) -> bytes:
        return self.uncompressed(self.save(ciphertext))

    def plaintext_from_ntt(
        self, context: Any, parms_id: list[int], values: np.ndarray, scale: float
    ) -> sealapi.Plaintext:
        """A plaintext in NTT form with the given RNS/NTT values (uint64, length N * L)."""
        data = np.ascontiguousarray(values, dtype="<u8").tobytes()
        dyn = _DYN_SIZE.pack(len(values)) + data
        dyn = self.header(len(dyn)) + dyn
        body = _PT_MEMBERS.pack(*parms_id, len(values), scale) + dyn
        plain = sealapi.Plaintext()
        self.load(plain, context, self.header(len(body)) + body)
        return plain

    def ciphertext_from_ntt(
        self, context: Any, parms_id: list[int], polys: np.ndarray, scale: float
    ) -> sealapi.Ciphertext:
        """A ciphertext in NTT form with the given parts, shape (size, rns_primes, N) of uint64 below the primes."""
        size, rns_primes, n = polys.shape
        data = np.ascontiguousarray(polys, dtype="<u8").tobytes()
        dyn = _DYN_SIZE.pack(polys.size) + data
        dyn = self.header(len(dyn)) + dyn
        body = _CT_MEMBERS.pack(*parms_id, 1, size, n, rns_primes, scale, 1) + dyn
        ciphertext = sealapi.Ciphertext(context)
        self.load(ciphertext, context, self.header(len(body)) + body)
        return ciphertext


def ciphertext_size(poly_modulus_degree: int, rns_primes: int, polys: int = 2) -> int:
    """Exact length of an uncompressed SEAL ciphertext."""
    data = 8 * poly_modulus_degree * rns_primes * polys
    return SEAL_HEADER_SIZE + _CT_MEMBERS.size + SEAL_HEADER_SIZE + _DYN_SIZE.size + data


def check_ciphertext_layout(
    data: bytes, *, parms_id: list[int], poly_modulus_degree: int, rns_primes: int, scale: float
) -> None:
    """Check an uncompressed SEAL ciphertext's header before SEAL parses it (size 2, NTT form)."""
    expected = ciphertext_size(poly_modulus_degree, rns_primes)
    if len(data) != expected:
        raise InvalidCiphertextError(
            f"ciphertext must be {expected} bytes (it is truncated, or made under another preset)",
            field="size",
        )
    if data[:2] != SEAL_MAGIC or data[2] != SEAL_HEADER_SIZE or data[5] != COMPR_NONE:
        raise InvalidCiphertextError("ciphertext header is not an uncompressed SEAL header", field="header")
    (declared,) = struct.unpack_from("<Q", data, 8)
    if declared != expected:
        raise InvalidCiphertextError("ciphertext header declares the wrong size", field="size")
    fields = _CT_MEMBERS.unpack_from(data, SEAL_HEADER_SIZE)
    pid, ntt, size, n, rns, ct_scale = list(fields[:4]), fields[4], fields[5], fields[6], fields[7], fields[8]
    if pid != parms_id or n != poly_modulus_degree or rns != rns_primes:
        raise InvalidCiphertextError("ciphertext was made under other parameters or at another level", field="level")
    if ntt != 1 or size != 2:
        raise InvalidCiphertextError("ciphertext is not a fresh two-part NTT-form ciphertext", field="size")
    if ct_scale != scale:
        raise InvalidCiphertextError("ciphertext has an unexpected scale", field="scale")


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


_CT_DATA_OFFSET = SEAL_HEADER_SIZE + _CT_MEMBERS.size + SEAL_HEADER_SIZE + _DYN_SIZE.size


def ciphertext_polys(data: bytes, poly_modulus_degree: int, rns_primes: int) -> np.ndarray:
    """The (c0, c1) NTT-form RNS values of a layout-checked ciphertext, shape (2, rns_primes, N)."""
    count = 2 * rns_primes * poly_modulus_degree
    values = np.frombuffer(data, dtype="<u8", count=count, offset=_CT_DATA_OFFSET)
    return values.reshape(2, rns_primes, poly_modulus_degree)
