"""Prometheus metrics and request logs, labelled by route template (never by subject id or token), and the
app both services are assembled into."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi import params as fastapi_params
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from veilface.protocol import Health, paths

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """One registry per app, so several apps in one process (tests) keep separate counts."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "veilface_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "veilface_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.decisions = Counter(
            "veilface_decisions_total",
            "Authority decisions by purpose and outcome",
            ["purpose", "outcome"],
            registry=self.registry,
        )
        self.stage = Histogram(
            "veilface_stage_duration_seconds",
            "Time per stage: homomorphic work, authority round trip",
            ["stage"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


class ObserveRequests:
    """ASGI middleware: counts and times every request and logs one structured line for it."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics, logger: logging.Logger) -> None:
        self.app = app
        self.metrics = metrics
        self.logger = logger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def observe_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observe_send)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(elapsed)
            self.logger.info(
                "request",
                extra={"method": method, "route": route, "status": status, "ms": round(elapsed * 1000, 2)},
            )


def shared_routes(metrics: Metrics, guard: fastapi_params.Depends) -> APIRouter:
    """What both services answer alike: liveness (no token) and their metrics, behind ``guard`` (a token check:
    an operator's at the matcher, the matcher's at the authority; Prometheus sends a bearer token with
    ``authorization: {credentials: ...}`` in its scrape config)."""
    from veilface.server.problems import problem_responses

    router = APIRouter()

    @router.get(paths.HEALTHZ, response_model=Health, tags=["health"])
    async def healthz() -> Health:
        return Health(status="ok")

    @router.get(
        paths.METRICS,
        response_class=Response,
        # 403: the matcher's needs an operator token with the admin scope.
        responses={200: {"content": {CONTENT_TYPE: {}}}, **problem_responses(401, 403)},
        dependencies=[guard],
        tags=["metrics"],
    )
    async def render() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    return router


def assemble_app(
    title: str,
    lifespan: Any,
    routers: Iterable[APIRouter],
    *,
    metrics: Metrics,
    guard: fastapi_params.Depends,
    logger: logging.Logger,
) -> FastAPI:
    """A service's FastAPI app: no public docs, problem+json errors, its routers and the shared ones
    (:func:`shared_routes`), request metrics and logs."""
    from veilface.server.problems import install_problem_handlers

    app = FastAPI(title=title, version="1", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    install_problem_handlers(app)
    for router in (*routers, shared_routes(metrics, guard)):
        app.include_router(router)
    app.add_middleware(ObserveRequests, metrics=metrics, logger=logger)
    return app
