"""The matcher's per-process state, built at start-up and shared by every request."""

from __future__ import annotations

from dataclasses import dataclass

import anyio

from veilface.protocol import PublicKeysAnswer
from veilface.server.auth import OperatorAuth
from veilface.server.keystore import MatcherKeys
from veilface.server.matcher.authority_client import AuthorityClient
from veilface.server.matcher.engine import MatcherEngine
from veilface.server.matcher.pseudonym import Pseudonymiser
from veilface.server.matcher.store import TemplateStore
from veilface.server.metrics import Metrics
from veilface.server.settings import MatcherSettings


@dataclass(frozen=True)
class MatcherState:
    """Everything a request handler needs; built once per process at start-up."""

    settings: MatcherSettings
    keys: MatcherKeys
    engine: MatcherEngine
    threshold: float
    auth: OperatorAuth
    metrics: Metrics
    store: TemplateStore
    pseudonyms: Pseudonymiser
    authority: AuthorityClient
    public_keys: PublicKeysAnswer
    # Enrolments and verifications between their homomorphic step and the authority's answer. More wait for a
    # slot before they start: an overloaded matcher queues requests instead of piling them onto its workers
    # and the authority, where the wait would count against the authority's deadline and end in 503s.
    in_flight: anyio.Semaphore
