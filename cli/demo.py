"""``veilface demo``: fresh keys, an authority and a matcher on loopback, shipped photos enrolled and verified."""

from __future__ import annotations

import secrets
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from veilface.cli.errors import fail
from veilface.client.api import Client
from veilface.client.samples import DemoCase, demo_cases
from veilface.crypto import DEFAULT_PRESET, key_ceremony
from veilface.protocol.face_models import DLIB_RESNET
from veilface.server.keystore import write_keyset
from veilface.server.launch import start_services

demo_app = typer.Typer()
progress = Console(stderr=True)


@demo_app.command("demo")
def demo(
    keep: Annotated[Path | None, typer.Option(help="Keep keys and data here (default: a temporary directory).")] = None,
) -> None:
    """Start an authority and a matcher on loopback with fresh keys, enrol and verify shipped photos."""
    with tempfile.TemporaryDirectory(prefix="veilface-demo-") as scratch:
        root = keep or Path(scratch)
        keys_dir, data_dir = root / "keys", root / "data"
        token = secrets.token_urlsafe(24)
        with progress.status("key ceremony"):
            keyset = key_ceremony(DEFAULT_PRESET, model_id=DLIB_RESNET.model_id, dimension=DLIB_RESNET.dimension)
            write_keyset(keys_dir, keyset)
        with progress.status("loading sample photos"):
            cases = demo_cases()
        with progress.status("starting authority and matcher on loopback"):
            services = start_services(keys_dir, data_dir, operator_token=token)
        with services:
            progress.print(f"matcher {services.matcher_url}, authority {services.authority_url}")
            authority_key = keys_dir / "public" / "signing.pub"
            rows, failures = _run_cases(services.matcher_url, token, authority_key, cases)
    table = Table(title="veilface demo: encrypted verification, one signed bit per decision")
    for column in ("case", "expected", "decision", "time"):
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    Console().print(table)
    if failures:
        raise fail(f"{failures} decision(s) differ from the expected ones")
    typer.echo("all decisions as expected")


def _run_cases(
    server: str, token: str, authority_key: Path, cases: list[DemoCase]
) -> tuple[list[tuple[str, str, str, str]], int]:
    rows: list[tuple[str, str, str, str]] = []
    failures = 0
    with Client(server, token=token, authority_key=authority_key) as client:
        with progress.status("loading the face model"):
            client.embed(cases[0].enrol_image)  # load it before timing
        for number, case in enumerate(cases, start=1):
            subject = f"demo-subject-{number}"
            client.enroll(subject, case.enrol_image)
            start = time.perf_counter()
            record = client.verify(subject, case.probe_image)
            elapsed = time.perf_counter() - start
            expected = "match" if case.expected_match else "no match"
            decision = "match" if record.match else "no match"
            failures += decision != expected
            rows.append((case.name, expected, decision, f"{elapsed * 1000:.0f} ms"))
            client.delete(subject)
    return rows, failures
