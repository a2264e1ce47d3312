"""The authority's per-process state, built at start-up and shared by every request."""

from __future__ import annotations

from dataclasses import dataclass

import anyio

from veilface.crypto import SigningKey
from veilface.server.authority.engine import AuthorityEngine
from veilface.server.authority.ledger import DecisionLedger
from veilface.server.metrics import Metrics
from veilface.server.settings import AuthoritySettings


@dataclass(frozen=True)
class AuthorityState:
    settings: AuthoritySettings
    engine: AuthorityEngine
    ledger: DecisionLedger
    # Appends are serialised by the database; this keeps this process's requests from queueing on its lock.
    ledger_lock: anyio.Lock
    signing_key: SigningKey
    matcher_token: str
    metrics: Metrics
