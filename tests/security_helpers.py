"""Helpers of the security tests: what a leak would look like, and where to look for it.

Scanners return what they found, so every test can also show that the same scan finds a planted marker.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
import socket
import ssl
import struct
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import tenseal as ts
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from server_fixtures import ADMIN_TOKEN, AUTHORITY_TOKEN
from sqlalchemy import MetaData, create_engine, select

import veilface.crypto as vc
from veilface.bench.harness.deployment import clean_environment
from veilface.bench.harness.processes import live_descendants
from veilface.server.launch import ServiceProcess


def embedding_markers(vector: np.ndarray) -> list[bytes]:
    """What an embedding would leave behind if any of it were stored, logged or kept in memory: windows of
    its float64 and float32 bytes, and decimal renderings (repr, %.8f) of a few components."""
    values = np.asarray(vector, dtype=np.float64)
    f64, f32 = values.astype("<f8").tobytes(), values.astype("<f4").tobytes()
    markers = [f64[i : i + 32] for i in range(0, len(f64) - 32 + 1, len(f64) // 4)]
    markers += [f32[i : i + 16] for i in range(0, len(f32) - 16 + 1, len(f32) // 4)]
    for component in values[:3]:
        markers += [repr(float(component)).encode(), f"{component:.8f}".encode()]
    return markers


def secret_key_in_memory(keyset: vc.KeySet) -> list[bytes]:
    """Windows of the CKKS secret key as SEAL keeps it in memory (its NTT-form coefficients, uint64), which any
    process that loaded the secret bundle holds."""
    context = ts.context_from(keyset.secret.context)
    secret_key = context.secret_key().data
    poly = secret_key.data()
    raw = b"".join(struct.pack("<Q", poly[i]) for i in range(poly.coeff_count()))
    return [raw[i : i + 32] for i in range(0, len(raw) - 32 + 1, len(raw) // 8)]


def secret_markers(keyset: vc.KeySet) -> list[bytes]:
    """Byte strings that only the secret key material contains: windows of the CKKS secret key as SEAL saves
    it (compressed, as inside secret/context.bin) and as it holds it in memory, and the Ed25519 private key."""
    secret_key = ts.context_from(keyset.secret.context).secret_key().data
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "sk.bin"
        secret_key.save(str(path))
        saved = path.read_bytes()
    pem = keyset.signing_key.to_pem()
    private = serialization.load_pem_private_key(pem, password=None).private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    pem_body = b"".join(pem.splitlines()[1:-1])
    markers = [saved[i : i + 48] for i in range(64, len(saved) - 48, len(saved) // 8)]
    return [*markers, *secret_key_in_memory(keyset), private, pem_body]


def distinctive_windows(
    secret_file: Path, shared_files: Iterable[Path], *, size: int = 32, count: int = 64
) -> list[bytes]:
    """Windows of ``secret_file`` that none of ``shared_files`` holds: secret/context.bin also carries the
    parameters and the public key, which every bundle carries, so only these windows mean the secret leaked."""
    secret = secret_file.read_bytes()
    shared = b"\0".join(path.read_bytes() for path in shared_files)
    windows = [secret[i : i + size] for i in range(0, len(secret) - size, max(1, len(secret) // count))]
    return [window for window in windows if window not in shared]


def files_holding(root: Path, markers: Iterable[bytes]) -> dict[str, int]:
    """Files under ``root`` (or ``root`` itself) that contain any marker, with how many of them."""
    wanted = list(markers)
    paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    found = {}
    for path in paths:
        try:
            content = path.read_bytes()
        except FileNotFoundError:  # a temporary file another process removed between listing and reading
            continue
        hits = sum(marker in content for marker in wanted)
        if hits:
            found[str(path)] = hits
    return found


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (zombies, already gone but not yet reaped, excluded)."""
    return set(live_descendants(pid))


def process_tree(pid: int) -> list[int]:
    """``pid`` and every live process below it (a service and its worker pool)."""
    return [pid, *live_descendants(pid)]


_MAPS_LINE = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \d+\s*(.*)$")


def writable_memory(pid: int) -> Iterator[bytes]:
    """Every private writable mapping of a process (heap, anonymous memory, libraries' data): where anything
    it read, decoded or computed lives. Code and read-only file mappings hold nothing it received."""
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as memory:
        for line in maps:
            match = _MAPS_LINE.match(line)
            if match is None or not match.group(3).startswith("rw") or match.group(4).startswith("[v"):
                continue
            start, end = int(match.group(1), 16), int(match.group(2), 16)
            try:
                memory.seek(start)
                yield memory.read(end - start)
            except (OSError, OverflowError, ValueError):
                continue  # a mapping that went away or cannot be read (guard pages)


class MarkerSearch:
    """Finds any of many byte strings (16 bytes or longer) in hundreds of megabytes at numpy speed.

    Each marker contains a whole 8-byte-aligned word of the haystack at one of 8 offsets, so every 8-byte
    window of every marker is hashed into a table; the haystack's aligned words are hashed in one vectorised
    pass and only the few that hit the table are compared byte by byte.
    """

    TABLE_BITS = 24
    _MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: spreads words that differ in any bit
    _CHUNK_WORDS = 1 << 23

    def __init__(self, markers: Iterable[bytes]) -> None:
        self.markers = list(dict.fromkeys(markers))
        if any(len(marker) < 16 for marker in self.markers):
            raise ValueError("markers must be at least 16 bytes long")
        self._windows: dict[int, list[tuple[bytes, int]]] = {}
        for marker in self.markers:
            for offset in range(8):
                word = int.from_bytes(marker[offset : offset + 8], "little")
                self._windows.setdefault(word, []).append((marker, offset))
        self._table = np.zeros(1 << self.TABLE_BITS, dtype=bool)
        self._table[self._hash(np.array(list(self._windows), dtype=np.uint64))] = True

    def _hash(self, words: np.ndarray) -> np.ndarray:
        return (words * self._MULTIPLIER) >> np.uint64(64 - self.TABLE_BITS)

    def found_in(self, haystack: bytes) -> set[bytes]:
        """The markers that occur in ``haystack`` (whose start is 8-byte aligned in the memory it came from)."""
        found: set[bytes] = set()
        words = np.frombuffer(haystack, dtype="<u8", count=len(haystack) // 8)
        for first in range(0, len(words), self._CHUNK_WORDS):
            chunk = words[first : first + self._CHUNK_WORDS]
            for index in np.flatnonzero(self._table[self._hash(chunk)]):
                position = (first + int(index)) * 8
                for marker, offset in self._windows.get(int(chunk[index]), ()):
                    start = position - offset
                    if start >= 0 and haystack[start : start + len(marker)] == marker:
                        found.add(marker)
        return found


def memory_holding(pid: int, markers: Iterable[bytes]) -> list[bytes]:
    """The markers found in the memory of ``pid`` or any process below it, in the order given."""
    search = MarkerSearch(markers)
    found: set[bytes] = set()
    for process in process_tree(pid):
        for region in writable_memory(process):
            found |= search.found_in(region)
    return [marker for marker in search.markers if marker in found]


def database_values(url: str) -> bytes:
    """Every value of every veilface table, as bytes, so a scan covers rows on any backend."""
    engine = create_engine(url)
    metadata = MetaData()
    metadata.reflect(engine)
    values: list[bytes] = []
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            if table.name.startswith("vf_"):
                for row in conn.execute(select(table)):
                    values += [v if isinstance(v, bytes) else str(v).encode() for v in row]
    engine.dispose()
    return b"\n".join(values)


def self_signed(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A certificate for ``host`` (an IP address) signed by its own key, and that key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return cert_path, key_path


class RecordingTransport(httpx.BaseTransport):
    """Forwards requests and notes each one's method, path and body size: what left the client."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.sent: list[tuple[str, str, int]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append((request.method, request.url.path, len(request.read())))
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def service_env(authority_url: str) -> tuple[dict[str, str], dict[str, str]]:
    """The authority's and the matcher's variables for :func:`launched`: one matcher worker, the admin's
    operator token, and the matcher reaching the authority at ``authority_url``."""
    authority = {"VEILFACE_AUTHORITY_TOKEN": AUTHORITY_TOKEN}
    matcher = authority | {
        "VEILFACE_OPERATOR_TOKENS": ADMIN_TOKEN,
        "VEILFACE_AUTHORITY_URL": authority_url,
        "VEILFACE_MATCHER_WORKERS": "1",
    }
    return authority, matcher


@contextmanager
def launched(
    name: str, keys: Path, data: Path, port: int, env: dict[str, str], extra: Sequence[str] = ()
) -> Iterator[ServiceProcess]:
    """``veilface serve NAME`` on ``port`` as its own process group (no VEILFACE_* variable but ``env``), its
    output in ``DATA.log``; stopped with SIGTERM."""
    service = ServiceProcess(
        name,
        keys=keys,
        data=data,
        env=clean_environment() | env,
        port=port,
        extra=extra,
        tls="--ssl-certfile" in extra,
        log_path=data.with_name(data.name + ".log"),
    )
    service.start()
    try:
        yield service
    finally:
        service.stop(30)


def readiness(url: str, verify: ssl.SSLContext | bool = True, *, until_ready: bool) -> httpx.Response:
    """/readyz once the service answers at all, or (``until_ready``) once it answers 200."""
    deadline = time.monotonic() + 60
    while True:
        try:
            response = httpx.get(url + "/readyz", verify=verify, timeout=5.0)
            if response.status_code == 200 or not until_ready or time.monotonic() > deadline:
                return response
        except httpx.TransportError:
            assert time.monotonic() < deadline, f"{url} did not start"
        time.sleep(0.2)
