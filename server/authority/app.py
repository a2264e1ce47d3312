"""Builds the authority's FastAPI app: the only service that loads the secret key."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import Depends, FastAPI

from veilface.crypto import ConfigurationError
from veilface.server.authority import routes_decisions, routes_health, routes_keys
from veilface.server.authority.deps import matcher_only
from veilface.server.authority.engine import AuthorityEngine
from veilface.server.authority.ledger import Budgets, DecisionLedger, open_ledger_database
from veilface.server.authority.state import AuthorityState
from veilface.server.files import private_directory
from veilface.server.keystore import load_authority_keys
from veilface.server.lifespan import running
from veilface.server.metrics import Metrics, assemble_app
from veilface.server.migrations import prepare_schema
from veilface.server.settings import AuthoritySettings

log = logging.getLogger("veilface.authority")


def budgets_from(settings: AuthoritySettings) -> Budgets:
    return Budgets(
        per_subject=settings.budget_per_subject,
        subject_window_s=settings.budget_subject_window,
        per_token=settings.budget_per_token,
        token_window_s=settings.budget_token_window,
        global_per_minute=settings.budget_global_per_minute,
        per_key=settings.budget_per_key,
    )


def create_authority_app(settings: AuthoritySettings, *, engine: AuthorityEngine | None = None) -> FastAPI:
    """The authority app. ``engine`` exists for tests and benchmarks (plaintext stand-in); production
    builds its engine from the secret bundle."""
    keys = load_authority_keys(settings.authority_keys_dir)
    if engine is None:
        engine = AuthorityEngine.in_processes(keys.secret, workers=settings.authority_workers)
    if engine.key_id != keys.secret.key_id:
        raise ConfigurationError("the authority's cipher does not match its secret bundle")
    private_directory(settings.authority_data_dir)
    ledger = DecisionLedger(open_ledger_database(settings.database_url), budgets_from(settings))
    prepare_schema(ledger.database, auto_migrate=settings.auto_migrate, data_dir=settings.database_dir)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running(engine, ledger.database, log):
            app.state.authority = AuthorityState(
                settings=settings,
                engine=engine,
                ledger=ledger,
                ledger_lock=anyio.Lock(),
                signing_key=keys.signing_key,
                matcher_token=settings.authority_token.get_secret_value(),
                metrics=metrics,
            )
            log.info(
                "authority started",
                extra={
                    "key_id": engine.key_id,
                    "preset": engine.preset,
                    "database": ledger.database.dialect,
                    "signing_key": keys.signing_key.verify_key.fingerprint,
                    "environment": settings.environment,
                },
            )
            yield

    routers = [module.router for module in (routes_health, routes_keys, routes_decisions)]
    guard = Depends(matcher_only)
    return assemble_app("veilface authority", lifespan, routers, metrics=metrics, guard=guard, logger=log)
