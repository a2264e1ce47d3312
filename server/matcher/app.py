"""Builds the matcher's FastAPI app: checks keys, settings and the database schema first; workers start with it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import httpx
from fastapi import Depends, FastAPI

from veilface.crypto import CkksClientCipher, ConfigurationError
from veilface.protocol import PublicKeysAnswer
from veilface.server.auth import OperatorAuth
from veilface.server.files import private_directory
from veilface.server.keystore import load_matcher_keys
from veilface.server.lifespan import running
from veilface.server.matcher import routes_health, routes_keys, routes_subjects
from veilface.server.matcher.authority_client import AuthorityClient
from veilface.server.matcher.deps import admin_only
from veilface.server.matcher.engine import MatcherEngine
from veilface.server.matcher.pseudonym import Pseudonymiser, load_or_create_key
from veilface.server.matcher.state import MatcherState
from veilface.server.matcher.store import TemplateStore, open_template_database
from veilface.server.metrics import Metrics, assemble_app
from veilface.server.migrations import prepare_schema
from veilface.server.settings import MatcherSettings

log = logging.getLogger("veilface.matcher")
# Requests allowed between their homomorphic step and the authority's answer, per HE worker process: enough
# to keep every worker and the authority busy (a compare, then ~10 ms at the authority), few enough that
# queueing happens before the work starts rather than at the authority (see MatcherState.in_flight).
IN_FLIGHT_PER_WORKER = 4


def create_matcher_app(
    settings: MatcherSettings,
    *,
    engine: MatcherEngine | None = None,
    authority_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """The matcher app. ``engine`` and ``authority_transport`` exist for tests and benchmarks (plaintext
    stand-ins, an in-process authority); production builds its engine from the evaluation bundle."""
    keys = load_matcher_keys(settings.matcher_keys_dir)
    description = keys.description
    # Parsing the public bundle as a client would proves it holds no secret key.
    CkksClientCipher(keys.public, model_id=description.model_id, dimension=description.dimension)
    if engine is None:
        engine = MatcherEngine.in_processes(
            keys.evaluation,
            model_id=description.model_id,
            dimension=description.dimension,
            workers=settings.matcher_workers,
        )
    if (engine.key_id, engine.model_id, engine.dimension) != (
        description.key_id,
        description.model_id,
        description.dimension,
    ):
        raise ConfigurationError("the matcher's cipher does not match the signed public description")
    threshold = settings.threshold_for(description.model_id)
    auth = OperatorAuth(settings.operators())
    metrics = Metrics()
    private_directory(settings.matcher_data_dir)
    pseudonyms = Pseudonymiser(load_or_create_key(settings.pseudonym_key_path))
    store = TemplateStore(open_template_database(settings.database_url))
    prepare_schema(store.database, auto_migrate=settings.auto_migrate, data_dir=settings.database_dir)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        authority = AuthorityClient(
            settings.authority_url,
            settings.authority_token.get_secret_value(),
            verify_key=keys.verify_key,
            key_id=description.key_id,
            timeout=settings.authority_timeout,
            ca_file=settings.authority_ca_file,
            transport=authority_transport,
        )
        try:
            async with running(engine, store.database, log):
                app.state.matcher = MatcherState(
                    settings=settings,
                    keys=keys,
                    engine=engine,
                    threshold=threshold,
                    auth=auth,
                    metrics=metrics,
                    store=store,
                    pseudonyms=pseudonyms,
                    authority=authority,
                    public_keys=PublicKeysAnswer.of(keys.public, keys.description, keys.signature),
                    in_flight=anyio.Semaphore(IN_FLIGHT_PER_WORKER * settings.matcher_workers),
                )
                log.info(
                    "matcher started",
                    extra={
                        "key_id": description.key_id,
                        "model_id": description.model_id,
                        "preset": description.preset,
                        "workers": settings.matcher_workers,
                        "database": store.database.dialect,
                        "environment": settings.environment,
                    },
                )
                yield
        finally:
            await authority.aclose()

    routers = [module.router for module in (routes_health, routes_keys, routes_subjects)]
    guard = Depends(admin_only)  # /metrics: request counts and timings are the admin's
    return assemble_app("veilface matcher", lifespan, routers, metrics=metrics, guard=guard, logger=log)
