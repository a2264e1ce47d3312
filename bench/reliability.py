"""Reliability under faults and bad input: fuzzing, crash safety, outages and restarts (issue 8).

``veilface bench reliability`` and ``veilface bench crash`` (``veilface.cli.bench``) run ``run_reliability``
and ``run_crash``; a report's ``problems`` (``crash_problems`` for a crash run) say what fell short.

Every scenario runs the real services under fresh CKKS keys (``veilface.bench.harness``), each service as
its own process group on a loopback port (the way an operator's supervisor would), so that either can be
killed, frozen or restarted on the same port with the same settings while the other keeps running.

- fuzz: every parser (ciphertext envelopes, CKKS templates and probes, blinded results, key bundles and their
  files, the signed public description, decision records, the matcher-authority wire format, images, and the
  client's reading of a matcher's answers) under hypothesis, raising only its documented exception types;
  and every operation of both services' OpenAPI documents under schemathesis, with valid tokens, positive
  and negative cases and mutated real ciphertexts: no answer with a 5xx status.
- crash: concurrent enrolments while the matcher's process group is SIGKILLed, in rounds; after each restart
  on the same port and data every acknowledged (201) enrolment is present byte for byte and verifies, and no
  row holds anything but the complete template sent for it.
- outages: verifications under load while the authority is killed (or frozen) and restarted on its port, and
  while the matcher's PostgreSQL server is stopped and started: 503 within 2 s, ``/readyz`` says which part
  is missing, and service resumes without restarting the matcher.
- restart: SIGTERM under load leaves no process of the service's group behind, and its port binds again at once.
- steady load: 50 clients for 60 s after a warm-up, every answer a 200 with the right bit, and the matcher's
  memory sampled throughout: it must not grow once warm. (``veilface bench load`` measures throughput and
  latency under the same load, against the plaintext stand-in; the README cites both.)
"""

from __future__ import annotations

import secrets
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from sqlalchemy import select, text

import veilface.crypto as vc
from veilface.bench._stats import Progress, Report, machine, markdown_table, quiet
from veilface.bench.harness.deployment import DIMENSION, MODEL_ID, OCTETS, Deployment, deployment
from veilface.bench.harness.faults import (
    Answer,
    PostgresUnavailableError,
    PrivatePostgres,
    Send,
    TemplatePool,
    Traffic,
    Work,
    json_field,
    rebind,
    summarise,
    template_pool,
    verification_work,
    verifications,
)
from veilface.bench.harness.fuzz import fuzz_http, fuzz_parsers
from veilface.bench.harness.processes import group_members, group_rss_mb, process_kind
from veilface.protocol import headers as wire
from veilface.server.launch import READY_TIMEOUT_S
from veilface.server.matcher.store import open_template_database, templates

# Issue 8 asks for the 503 within 2 s: the matcher's deadline per authority call is 1.8 s, its own work on top.
OUTAGE_ANSWER_S = 2.0
NOT_RUN = {"skipped": "not run (a report from before this run existed)"}
CRASH_PREFIX = "crash-"
# Room for allocator noise and caches that fill slowly; a ciphertext (65 kB) leaked per request exceeds it
# within seconds at tens of verifications per second.
RSS_GROWTH_LIMIT = 0.05
LOAD_WARMUP_S = 5.0
# multiprocessing's resource tracker exits when it reads end-of-file from its exited parent, a moment later.
GROUP_EXIT_GRACE_S = 1.0


# -- crash safety ---------------------------------------------------------------------------------------


def stored_templates(database_url: str) -> dict[str, bytes]:
    """Every row of the matcher's template table, read directly (not through the service)."""
    database = open_template_database(database_url)
    try:
        with database.transaction() as conn:
            rows = conn.execute(select(templates.c.subject_id, templates.c.template)).all()
            if database.dialect == "sqlite":
                # A torn page or a half-applied write-ahead log would show here, whatever the rows say.
                check = conn.execute(text("PRAGMA integrity_check")).scalar_one()
                if check != "ok":
                    raise vc.ServiceError(f"SQLite integrity check failed: {check}")
    finally:
        database.dispose()
    return {subject: bytes(template) for subject, template in rows}


def crash_safety(
    dep: Deployment,
    pool: TemplatePool,
    *,
    enrolments: int,
    rounds: int,
    clients: int,
    progress: Progress = quiet,
) -> dict[str, Any]:
    """Enrol distinct subjects from ``clients`` threads; once each round's share is acknowledged, SIGKILL the
    matcher's process group with enrolments still in flight, restart it on its port, and go on. Then check
    every acknowledged enrolment and every stored row."""
    sent: dict[str, int] = {}  # subject -> pool index of the template sent for it
    acknowledged: dict[str, int] = {}
    lock = threading.Lock()
    per_round = -(-enrolments // rounds)
    kills: list[dict[str, Any]] = []

    def enrol(round_number: int) -> Send:
        def send(http: httpx.Client, number: int) -> tuple[httpx.Response, bool]:
            subject, index = f"{CRASH_PREFIX}{round_number}-{number}", number % len(pool.templates)
            with lock:
                sent[subject] = index
            response = http.put(f"/v1/subjects/{subject}/template", content=pool.templates[index], headers=OCTETS)
            if response.status_code == 201:
                with lock:
                    acknowledged[subject] = index
            return response, response.status_code == 201

        return send

    for round_number in range(rounds):
        target = min(per_round, enrolments - len(acknowledged))
        with Traffic(dep.matcher.url, dep.operator_token, enrol(round_number), clients=clients) as traffic:
            while traffic.count(lambda a: a.status == 201) < target:
                if not dep.matcher.running():
                    raise vc.ServiceError(f"the matcher died on its own; see {dep.matcher.log_path}")
                time.sleep(0.002)
            in_flight = traffic.in_flight
            dep.matcher.kill()
            answers = traffic.stop()
        kills.append({"acknowledged": sum(a.status == 201 for a in answers), "in_flight": in_flight})
        progress(f"round {round_number + 1}/{rounds}: {len(acknowledged)} acknowledged, killed")
        started = time.monotonic()
        dep.matcher.start()
        dep.wait_ready()
        kills[-1]["restart_s"] = round(time.monotonic() - started, 3)
        unexpected = Counter(f"{a.status} {a.problem}" for a in answers if a.status not in (0, 201))
        if unexpected:
            raise vc.ServiceError(f"enrolments answered {dict(unexpected)} before the kill; see {dep.matcher.log_path}")

    # This run's rows only: the deployment may hold other subjects (the benchmark fuzzes it first).
    rows = {s: t for s, t in stored_templates(dep.matcher_database_url).items() if s.startswith(CRASH_PREFIX)}
    missing = sorted(subject for subject in acknowledged if subject not in rows)
    # Every row must be exactly the template sent for that subject, acknowledged or not (in flight at a kill).
    corrupt = sorted(
        subject for subject, stored in rows.items() if subject not in sent or stored != pool.templates[sent[subject]]
    )
    unacknowledged_stored = sorted(set(rows) - set(acknowledged))
    progress(f"verifying {len(acknowledged)} acknowledged enrolments")
    failed_verifications = verify_enrolled(dep, pool, acknowledged, clients=clients)
    return {
        "rounds": rounds,
        "clients": clients,
        "acknowledged": len(acknowledged),
        "sent": len(sent),
        "in_flight_at_kill": [kill["in_flight"] for kill in kills],
        "restart_s": [kill["restart_s"] for kill in kills],
        "rows": len(rows),
        "missing": missing,
        "corrupt": corrupt,
        "unacknowledged_but_stored": len(unacknowledged_stored),
        "failed_verifications": failed_verifications,
        "recovered": len(acknowledged) - len(set(missing) | set(failed_verifications)),
    }


def verify_enrolled(dep: Deployment, pool: TemplatePool, enrolled: dict[str, int], *, clients: int) -> list[str]:
    """Subjects whose metadata is missing or whose genuine probe does not match; the first few subjects
    also get an impostor probe, which must not match, so that a matching answer means something."""
    local = threading.local()
    opened: list[httpx.Client] = []
    impostor_checks = set(list(enrolled)[:10])

    def check(item: tuple[str, int]) -> str | None:
        subject, index = item
        if not hasattr(local, "http"):
            local.http = dep.client()
            opened.append(local.http)
        http: httpx.Client = local.http
        if http.get(f"/v1/subjects/{subject}").status_code != 200:
            return subject
        probes = [(pool.genuine_probe(index), True)]
        if subject in impostor_checks:
            probes.append((pool.impostor_probe(index), False))
        for probe, expected in probes:
            headers = {**OCTETS, wire.CLIENT_NONCE: secrets.token_urlsafe(24)}
            response = http.post(f"/v1/subjects/{subject}/verify", content=probe, headers=headers)
            if response.status_code != 200 or json_field(response, "match") is not expected:
                return subject
        return None

    try:
        with ThreadPoolExecutor(max_workers=clients) as executor:
            failed = [subject for subject in executor.map(check, enrolled.items()) if subject is not None]
    finally:
        for http in opened:
            http.close()
    return sorted(failed)


# -- outages --------------------------------------------------------------------------------------------


@dataclass
class Timeline:
    """When a fault was injected, took effect, was lifted, and when the dependency answered again."""

    fault: float = 0.0
    down: float = 0.0
    restore: float = 0.0
    up: float = 0.0
    not_ready_after_s: float | None = None
    not_ready_body: dict[str, Any] = field(default_factory=dict)
    ready_again_after_s: float | None = None


def outage_report(answers: list[Answer], timeline: Timeline, *, problem: str) -> dict[str, Any]:
    """Split the answers at the fault and the recovery; what a client saw in each part."""
    parts: dict[str, list[Answer]] = {"before": [], "during": [], "around": [], "after": []}
    for answer in answers:
        if answer.done < timeline.fault:
            parts["before"].append(answer)
        elif answer.sent >= timeline.down and answer.done <= timeline.restore:
            parts["during"].append(answer)
        elif answer.sent >= timeline.up:
            parts["after"].append(answer)
        else:  # sent before the fault took effect, or answered while it was being lifted
            parts["around"].append(answer)
    during, after = parts["during"], parts["after"]
    refused = [a for a in during if a.status == 503]
    resumed = [a.done for a in after if a.ok]
    return {
        **{name: summarise(part) for name, part in parts.items()},
        "expected_problem": problem,
        "first_503_after_s": round(min(a.done for a in refused) - timeline.down, 3) if refused else None,
        "max_503_s": round(max(a.seconds for a in refused), 3) if refused else None,
        "not_ready_after_s": timeline.not_ready_after_s,
        "not_ready_body": timeline.not_ready_body,
        "ready_again_after_s": timeline.ready_again_after_s,
        "resumed_after_s": round(min(resumed) - timeline.up, 3) if resumed else None,
        "outage_s": round(timeline.restore - timeline.down, 3),
    }


def outage_problems(report: dict[str, Any], *, missing: str, max_answer_s: float = OUTAGE_ANSWER_S) -> list[str]:
    """What an outage run got wrong; empty when the matcher behaved as issue 8 asks."""
    found = []
    before, during, around, after = (report[part] for part in ("before", "during", "around", "after"))
    if before["requests"] == 0 or before["not_ok"]:
        found.append(f"before the fault: {before}")
    if (
        during["requests"] == 0
        or set(during["statuses"]) != {"503"}
        or set(during["problems"]) != {report["expected_problem"]}
    ):
        found.append(f"during the fault, answers other than 503 {report['expected_problem']}: {during}")
    if report["max_503_s"] is not None and report["max_503_s"] >= max_answer_s:
        found.append(f"a 503 took {report['max_503_s']} s (limit {max_answer_s} s)")
    if set(around["statuses"]) - {"200", "503"}:
        found.append(f"around the fault, answers other than 200 or 503: {around}")
    if after["requests"] == 0 or after["not_ok"]:
        found.append(f"after recovery: {after}")
    if report["not_ready_after_s"] is None or report["not_ready_body"].get(missing) is not False:
        found.append(f"/readyz did not report the {missing} missing: {report['not_ready_body']}")
    if report["ready_again_after_s"] is None:
        found.append("/readyz did not report ready again")
    return found


def _watch_readiness(dep: Deployment, timeline: Timeline, *, ready: bool, since: float, timeout: float) -> None:
    while time.monotonic() - since < timeout:
        status, body = dep.readiness()
        if (status == 200) is ready and status != 0:
            elapsed = round(time.monotonic() - since, 3)
            if ready:
                timeline.ready_again_after_s = elapsed
            else:
                timeline.not_ready_after_s, timeline.not_ready_body = elapsed, body
            return
        time.sleep(0.05)


def outage(
    dep: Deployment,
    work: Work,
    *,
    inject: Callable[[], None],
    lift: Callable[[], None],
    clients: int,
    before_s: float,
    outage_s: float,
    after_s: float,
) -> tuple[list[Answer], Timeline]:
    """Verifications from ``clients`` threads; ``inject`` the fault after ``before_s``, ``lift`` it after
    ``outage_s``, and go on for ``after_s``. The matcher process is never restarted."""
    matcher_pid = dep.matcher.pid
    timeline = Timeline()
    with Traffic(dep.matcher.url, dep.operator_token, verifications(work), clients=clients) as traffic:
        time.sleep(before_s)
        timeline.fault = time.monotonic()
        inject()
        timeline.down = time.monotonic()
        _watch_readiness(dep, timeline, ready=False, since=timeline.down, timeout=outage_s + 5.0)
        time.sleep(max(0.0, outage_s - (time.monotonic() - timeline.down)))
        timeline.restore = time.monotonic()
        lift()
        timeline.up = time.monotonic()
        _watch_readiness(dep, timeline, ready=True, since=timeline.up, timeout=READY_TIMEOUT_S)
        time.sleep(after_s)
        answers = traffic.stop()
    if not dep.matcher.running() or dep.matcher.pid != matcher_pid:
        raise vc.ServiceError("the matcher did not survive the outage")
    return answers, timeline


def authority_outage(
    dep: Deployment,
    work: Work,
    *,
    mode: str = "kill",
    clients: int = 4,
    before_s: float = 2.0,
    outage_s: float = 3.0,
    after_s: float = 2.0,
) -> dict[str, Any]:
    """The authority SIGKILLed and restarted on its port (``kill``), or frozen and thawed (``freeze``)."""
    if mode == "kill":

        def inject() -> None:
            dep.authority.kill()

        def lift() -> None:  # lifted once it serves again: its start-up is not the matcher's to answer for
            dep.authority.start()
            dep.authority.wait_healthy()

    elif mode == "freeze":

        def inject() -> None:
            dep.authority.freeze(True)

        def lift() -> None:
            dep.authority.freeze(False)

    else:
        raise ValueError(f"unknown outage mode {mode!r}")
    answers, timeline = outage(
        dep, work, inject=inject, lift=lift, clients=clients, before_s=before_s, outage_s=outage_s, after_s=after_s
    )
    return {"mode": mode, "clients": clients, **outage_report(answers, timeline, problem="authority-unavailable")}


def database_outage(
    dep: Deployment,
    postgres: PrivatePostgres,
    work: Work,
    *,
    clients: int = 4,
    before_s: float = 2.0,
    outage_s: float = 3.0,
    after_s: float = 2.0,
    problem: str = "database-unavailable",
) -> dict[str, Any]:
    """A PostgreSQL server stopped and started again under verification load: the matcher's (its own answers
    are 503 ``database-unavailable``) or the authority's (503 ``authority-unavailable`` from the matcher)."""
    answers, timeline = outage(
        dep,
        work,
        inject=postgres.stop,
        lift=postgres.start,
        clients=clients,
        before_s=before_s,
        outage_s=outage_s,
        after_s=after_s,
    )
    return {"clients": clients, **outage_report(answers, timeline, problem=problem)}


# -- steady load ----------------------------------------------------------------------------------------


def steady_load(
    dep: Deployment,
    work: Work,
    *,
    clients: int,
    seconds: float,
    warmup_s: float,
    sample_every_s: float,
) -> dict[str, Any]:
    """Verifications from ``clients`` threads for ``warmup_s`` then ``seconds``, with the matcher's memory
    (its process group) sampled from the end of the warm-up, when each worker holds what it keeps and the
    allocator the working set of ``clients`` concurrent requests: what grows after that is growth."""
    samples: list[tuple[float, float]] = []
    with Traffic(dep.matcher.url, dep.operator_token, verifications(work), clients=clients) as traffic:
        time.sleep(warmup_s)
        started = time.monotonic()
        samples.append((0.0, group_rss_mb(dep.matcher.pid)))
        while (elapsed := time.monotonic() - started) < seconds:
            time.sleep(min(sample_every_s, seconds - elapsed))
            samples.append((round(time.monotonic() - started, 1), group_rss_mb(dep.matcher.pid)))
        answers = traffic.stop()
    measured = sum(1 for answer in answers if answer.sent >= started)
    first, last = samples[0][1], samples[-1][1]
    return {
        "clients": clients,
        "seconds": seconds,
        "warmup_s": warmup_s,
        "workers": len([pid for pid in group_members(dep.matcher.pid) if process_kind(pid) == "worker"]),
        **summarise(answers),  # every answer, the warm-up's included
        "verifications_per_s": round(measured / seconds, 1),
        "rss_mb": {"after_warmup": first, "end": last, "samples": samples},
        "rss_growth": round(last / first - 1.0, 4),
    }


def load_problems(result: dict[str, Any], *, growth_limit: float = RSS_GROWTH_LIMIT) -> list[str]:
    found = []
    if result["requests"] == 0 or result["not_ok"]:
        found.append(f"answers other than 200 with the right bit: {result['statuses']}, {result['problems']}")
    if result["rss_growth"] > growth_limit:
        found.append(f"the matcher's memory grew {result['rss_growth']:.1%} after warm-up: {result['rss_mb']}")
    return found


# -- restarts -------------------------------------------------------------------------------------------


def restart_check(dep: Deployment, work: Work, *, clients: int = 4, load_s: float = 1.5) -> dict[str, Any]:
    """SIGTERM each service under verification load: its exit status and time to stop, whether its port
    binds again at once, which processes of its group outlived it and for how long; then restart it on that
    port and check that it serves."""
    results: dict[str, Any] = {}
    for service in (dep.matcher, dep.authority):
        with Traffic(dep.matcher.url, dep.operator_token, verifications(work), clients=clients) as traffic:
            time.sleep(load_s)
            pgid, port = service.pid, service.port
            before = sorted(process_kind(pid) for pid in group_members(pgid))
            started = time.monotonic()
            code = service.terminate()
            exited = time.monotonic()
            rebound = rebind(port)
            at_exit = sorted(process_kind(pid) for pid in group_members(pgid))
            while group_members(pgid) and time.monotonic() - exited < GROUP_EXIT_GRACE_S:
                time.sleep(0.005)
            emptied = time.monotonic() - exited
            left = sorted(process_kind(pid) for pid in group_members(pgid))
            answers = traffic.stop()
        started_again = time.monotonic()
        service.start()
        dep.wait_ready()
        restart_s = time.monotonic() - started_again
        with dep.client() as http:
            subject, fresh_probe, expected = work[0]
            headers = {**OCTETS, wire.CLIENT_NONCE: secrets.token_urlsafe(24)}
            response = http.post(f"/v1/subjects/{subject}/verify", content=fresh_probe(), headers=headers)
        results[service.name] = {
            "exit_status": code,
            "processes_before": before,
            "stop_s": round(exited - started, 3),
            "port_rebound_at_once": rebound,
            "outlived_it": at_exit,
            "group_empty_after_s": None if left else round(emptied, 3),
            "left_after_grace": left,
            "server_errors_during_stop": sum(1 for a in answers if a.status >= 500 and a.status != 503),
            "restart_ready_s": round(restart_s, 3),
            "serves_after_restart": response.status_code == 200 and json_field(response, "match") is expected,
        }
    return results


def restart_problems(results: dict[str, Any]) -> list[str]:
    """A worker still running when its service has exited, anything left after the grace, a busy port."""
    found = []
    for name, result in results.items():
        if result["exit_status"] != 0 or not result["port_rebound_at_once"] or "worker" in result["outlived_it"]:
            found.append(f"{name}: {result}")
        elif result["left_after_grace"] or result["server_errors_during_stop"] or not result["serves_after_restart"]:
            found.append(f"{name}: {result}")
    return found


# -- the benchmark --------------------------------------------------------------------------------------


def run_reliability(
    *,
    parser_examples: int,
    http_examples: int,
    enrolments: int,
    rounds: int,
    clients: int,
    load_clients: int,
    load_seconds: float,
    progress: Progress = quiet,
) -> Report:
    """Every check of issue 8 in turn; ``report["problems"]`` lists what fell short (empty when all held)."""
    rng = np.random.default_rng(8)
    keyset = vc.key_ceremony(vc.DEFAULT_PRESET, model_id=MODEL_ID, dimension=DIMENSION)
    report: Report = {"benchmark": "reliability", "machine": machine(), "preset": vc.DEFAULT_PRESET}
    progress(f"fuzzing parsers ({parser_examples} examples each)")
    report["fuzz_parsers"] = fuzz_parsers(keyset, examples=parser_examples)
    with tempfile.TemporaryDirectory(prefix="veilface-reliability-") as root:
        with deployment(Path(root) / "main", keyset=keyset, workers=2) as dep:
            pool = template_pool(dep.cipher, 8, rng)
            progress(f"fuzzing HTTP ({http_examples} examples per operation)")
            report["fuzz_http"] = fuzz_http(dep, pool, examples=http_examples)
            progress(f"crash safety ({enrolments} enrolments, {rounds} kills)")
            report["crash"] = crash_safety(
                dep, pool, enrolments=enrolments, rounds=rounds, clients=clients, progress=progress
            )
            work = verification_work(dep, pool, "outage")
            progress("authority killed and restarted under load")
            report["authority_outage"] = authority_outage(dep, work, mode="kill", clients=clients)
            progress("authority frozen and thawed under load")
            report["authority_freeze"] = authority_outage(dep, work, mode="freeze", clients=clients, outage_s=5.0)
            progress("SIGTERM under load")
            report["restart"] = restart_check(dep, work, clients=clients)
            progress(f"steady load ({load_clients} clients, {load_seconds:g} s)")
            report["load"] = steady_load(
                dep, work, clients=load_clients, seconds=load_seconds, warmup_s=LOAD_WARMUP_S, sample_every_s=10.0
            )
        report["database_outage"] = _database_outage_run(Path(root) / "pg", keyset, rng, clients, progress)
        report["authority_database_outage"] = _database_outage_run(
            Path(root) / "pg-authority", keyset, rng, clients, progress, side="authority"
        )
    report["problems"] = problems(report)
    return report


def _database_outage_run(
    root: Path,
    keyset: vc.KeySet,
    rng: np.random.Generator,
    clients: int,
    progress: Progress,
    *,
    side: str = "matcher",
) -> dict[str, Any]:
    """``side``'s database on a PostgreSQL cluster of the run's own, stopped and started under load."""
    try:
        postgres = PrivatePostgres()
    except PostgresUnavailableError as exc:
        return {"skipped": str(exc)}
    try:
        postgres.start()
        progress(f"{side}'s PostgreSQL stopped and started under load")
        with deployment(
            root,
            keyset=keyset,
            workers=2,
            matcher_database_url=postgres.url if side == "matcher" else None,
            authority_database_url=postgres.url if side == "authority" else None,
        ) as dep:
            work = verification_work(dep, template_pool(dep.cipher, 4, rng), "db")
            if side == "matcher":
                return database_outage(dep, postgres, work, clients=clients)
            return database_outage(dep, postgres, work, clients=clients, problem="authority-unavailable")
    finally:
        postgres.close()


def problems(report: Report) -> list[str]:
    """Everything in a report that falls short of issue 8; empty when it all holds."""
    found = [f"parser {name}: {r['crash']}" for name, r in report["fuzz_parsers"].items() if r["crash"]]
    http = report["fuzz_http"]
    found += [f"HTTP 5xx: {error}" for error in http["server_errors"]]
    found += [f"HTTP transport error: {error}" for error in http["transport_errors"]]
    if not http["services_alive"]:
        found.append("a service died while fuzzed")
    crash = report["crash"]
    for key in ("missing", "corrupt", "failed_verifications"):
        found += [f"crash safety, {key}: {subject}" for subject in crash[key]]
    found += [f"authority outage: {p}" for p in outage_problems(report["authority_outage"], missing="authority")]
    found += [
        f"authority freeze: {p}"
        for p in outage_problems(
            # A frozen authority is cut off at the 1.8 s deadline per call; with the matcher's work, within 2 s.
            report["authority_freeze"],
            missing="authority",
        )
    ]
    if "skipped" not in report["database_outage"]:
        found += [f"database outage: {p}" for p in outage_problems(report["database_outage"], missing="database")]
    authority_db = report.get("authority_database_outage", NOT_RUN)
    if "skipped" not in authority_db:
        found += [f"authority database outage: {p}" for p in outage_problems(authority_db, missing="authority")]
    found += [f"restart: {p}" for p in restart_problems(report["restart"])]
    found += [f"steady load: {p}" for p in load_problems(report["load"])]
    return found


def parsers_row(parsers: dict[str, Any]) -> list[str]:
    return [
        "parsers fuzzed (hypothesis)",
        f"{sum(r['cases'] for r in parsers.values())} cases over {len(parsers)} parsers",
        f"{sum(1 for r in parsers.values() if r['crash'])} crashes",
    ]


def http_row(http: dict[str, Any]) -> list[str]:
    return [
        "HTTP fuzzed (schemathesis)",
        f"{http['cases']} requests over {len(http['operations'])} operations",
        f"{len(http['server_errors'])} 5xx, {len(http['transport_errors'])} dropped connections, "
        f"{len(http['nonconforming'])} answers not as documented",
    ]


def crash_row(crash: dict[str, Any]) -> list[str]:
    return [
        "crash safety (SIGKILL of the matcher's group)",
        f"{crash['acknowledged']} enrolments acknowledged over {crash['rounds']} kills "
        f"({sum(crash['in_flight_at_kill'])} in flight at the kills)",
        f"{crash['recovered']} present and verifying, {len(crash['missing'])} missing, "
        f"{len(crash['corrupt'])} corrupt rows; {crash['unacknowledged_but_stored']} unacknowledged but complete",
    ]


def outage_row(label: str, result: dict[str, Any]) -> list[str]:
    if "skipped" in result:
        return [label, "skipped", result["skipped"]]
    return [
        label,
        f"{result['during']['requests']} answered 503 {result['expected_problem']} (slowest {result['max_503_s']} s); "
        f"/readyz not ready after {result['not_ready_after_s']} s",
        f"served again {result['resumed_after_s']} s after recovery; errors before/after: "
        f"{result['before']['not_ok']}/{result['after']['not_ok']}",
    ]


def restart_rows(results: dict[str, Any]) -> list[list[str]]:
    return [
        [
            f"SIGTERM {name} under load",
            f"exit {result['exit_status']} in {result['stop_s']} s; outlived it: "
            f"{', '.join(result['outlived_it']) or 'nothing'}; group empty after {result['group_empty_after_s']} s",
            f"port bound again at once: {'yes' if result['port_rebound_at_once'] else 'NO'}; "
            f"ready again in {result['restart_ready_s']} s",
        ]
        for name, result in results.items()
    ]


def load_row(load: dict[str, Any]) -> list[str]:
    return [
        f"steady load: {load['clients']} clients, {load['workers']} matcher workers",
        f"{load['requests']} verifications ({load['verifications_per_s']}/s over {load['seconds']:g} s after a "
        f"{load['warmup_s']:g} s warm-up)",
        f"{load['not_ok']} errors; matcher RSS {load['rss_mb']['after_warmup']:.0f} -> {load['rss_mb']['end']:.0f} MB "
        f"after warm-up ({load['rss_growth']:+.1%})",
    ]


def markdown(report: Report) -> str:
    rows = [parsers_row(report["fuzz_parsers"]), http_row(report["fuzz_http"]), crash_row(report["crash"])]
    rows += [
        outage_row("authority killed, restarted on its port", report["authority_outage"]),
        outage_row("authority frozen (SIGSTOP), thawed", report["authority_freeze"]),
        outage_row("matcher's PostgreSQL stopped, started", report["database_outage"]),
        outage_row("authority's PostgreSQL stopped, started", report.get("authority_database_outage", NOT_RUN)),
    ]
    rows += restart_rows(report["restart"])
    rows.append(load_row(report["load"]))
    lines = [
        f"Reliability on {report['machine']['cores']} cores ({report['machine']['cpu'] or 'unknown CPU'}), "
        f"preset {report['preset']}.",
        "",
        markdown_table(["check", "ran", "result"], rows),
        "",
        "Problems: " + ("none" if not report["problems"] else "; ".join(report["problems"])),
    ]
    return "\n".join(lines) + "\n"


def run_crash(*, enrolments: int, rounds: int, clients: int, database: str, progress: Progress = quiet) -> Report:
    """Crash safety alone, the matcher's database on SQLite or on a private PostgreSQL cluster ("postgresql")."""
    rng = np.random.default_rng(9)
    with tempfile.TemporaryDirectory(prefix="veilface-crash-") as root:
        postgres = PrivatePostgres() if database == "postgresql" else None
        try:
            if postgres is not None:
                postgres.start()
            url = postgres.url if postgres is not None else None
            with deployment(Path(root), workers=2, matcher_database_url=url) as dep:
                pool = template_pool(dep.cipher, 8, rng)
                result = crash_safety(
                    dep, pool, enrolments=enrolments, rounds=rounds, clients=clients, progress=progress
                )
        finally:
            if postgres is not None:
                postgres.close()
    return {"benchmark": "crash", "machine": machine(), "database": database, **result}


def crash_problems(report: Report) -> list[str]:
    """Acknowledged enrolments missing or not verifying, and corrupt rows; empty when the crash run held."""
    return [*report["missing"], *report["corrupt"], *report["failed_verifications"]]


def crash_markdown(report: Report) -> str:
    table = markdown_table(["check", "ran", "result"], [crash_row(report)])
    return f"Crash safety, the matcher on {report['database']}.\n\n{table}\n"
