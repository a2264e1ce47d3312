"""``veilface audit verify``: check the authority's hash-chained audit log, offline or beside a running authority.

Exit 0 when the chain is intact (and holds the anchor, if one is given), 1 when it is broken (the first bad
row is named), 2 for usage errors (no database found), 3 when the database cannot be read.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy import inspect
from sqlalchemy.exc import SQLAlchemyError

from veilface.crypto import ConfigurationError
from veilface.server.authority.ledger import (
    ChainReport,
    TokenUse,
    audit_log,
    inspect_chain,
    open_ledger_database,
    token_use,
)
from veilface.server.settings import sqlite_url

EXIT_INTACT, EXIT_BROKEN, EXIT_USAGE, EXIT_FAILURE = 0, 1, 2, 3
DATABASE_FILE = "authority.db"

audit_app = typer.Typer(
    help="Check the authority's audit log.", no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False
)


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"Error: {message}", err=True)
    return typer.Exit(code)


def find_database(data: Path) -> Path:
    """DATA/authority.db (an authority's data directory) or DATA/authority/authority.db (``serve all``'s)."""
    for candidate in (data / DATABASE_FILE, data / "authority" / DATABASE_FILE):
        if candidate.is_file():
            return candidate
    raise _fail(
        f"no {DATABASE_FILE} in {data} or {data / 'authority'}; give the authority's data directory, the one "
        "given to 'serve all', or --database-url for PostgreSQL",
        EXIT_USAGE,
    )


def _problem_text(report: ChainReport) -> str:
    broken = report.broken
    assert broken is not None
    if broken.problem == "missing":
        first, last = broken.expected_seq, broken.seq - 1
        gap = f"row {first} is" if first == last else f"rows {first}-{last} are"
        return f"{gap} missing (row {broken.seq} follows row {first - 1})"
    if broken.problem == "altered":
        return f"row {broken.seq} was altered (its hash does not match its contents)"
    return f"row {broken.seq} does not chain to row {broken.seq - 1} (one of them was rewritten with a new hash)"


def _time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="seconds")


def _token_dict(use: TokenUse) -> dict[str, Any]:
    return {
        "token_id": use.token_id,
        "granted": use.granted,
        "refused": use.refused,
        "subjects": use.subjects,
        "first": _time(use.first_ms),
        "last": _time(use.last_ms),
    }


@audit_app.command("verify")
def verify(
    data: Annotated[
        Path | None,
        typer.Option("--data", metavar="DIR", help="The authority's data directory, or the one given to 'serve all'."),
    ] = None,
    database_url: Annotated[
        str | None, typer.Option("--database-url", metavar="URL", help="The authority's database URL instead.")
    ] = None,
    anchor: Annotated[
        str | None,
        typer.Option(metavar="HASH", help="A last hash recorded earlier elsewhere; it must still be in the chain."),
    ] = None,
    by_token: Annotated[bool, typer.Option("--by-token", help="Also count decisions per operator token.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Recompute the audit log's hash chain and report the first altered, missing or unlinked row."""
    if data is not None and database_url is None:
        url = sqlite_url(find_database(data))
    elif database_url is not None and data is None:
        url = database_url
    else:
        raise _fail("give exactly one of --data DIR and --database-url URL", EXIT_USAGE)
    try:
        database = open_ledger_database(url)
    except ConfigurationError as exc:
        raise _fail(exc.message, EXIT_USAGE) from None
    try:
        if not inspect(database.engine).has_table(audit_log.name):
            raise _fail("this database holds no audit log (is it the authority's?)", EXIT_USAGE)
        report = inspect_chain(database, anchor=anchor)
        tokens = token_use(database) if by_token else []
    except SQLAlchemyError as exc:
        raise _fail(f"cannot read the audit log ({type(exc).__name__})", EXIT_FAILURE) from None
    finally:
        database.dispose()

    anchor_missing = anchor is not None and report.anchor_seq is None and report.broken is None
    intact = report.broken is None and not anchor_missing
    if json_out:
        result: dict[str, Any] = {
            "intact": intact,
            "rows_checked": report.rows,
            "last_hash": report.last_hash,
            "first_bad_row": report.broken.first_bad_row if report.broken else None,
            "problem": report.broken.problem if report.broken else None,
            "detail": _problem_text(report) if report.broken else None,
        }
        if anchor is not None:
            result["anchor_row"] = report.anchor_seq
        if by_token:
            result["tokens"] = [_token_dict(use) for use in tokens]
        typer.echo(json.dumps(result))
    else:
        if report.broken is not None:
            typer.echo(f"Error: audit chain broken: {_problem_text(report)}", err=True)
        elif anchor_missing:
            typer.echo("Error: the anchor is not in the chain: rows were rewritten or removed after it", err=True)
        else:
            where = f", anchor at row {report.anchor_seq}" if report.anchor_seq is not None else ""
            typer.echo(f"audit chain intact: {report.rows} rows, last hash {report.last_hash}{where}")
        for use in tokens:
            line = _token_dict(use)
            typer.echo(
                f"token {use.token_id}: {use.granted} granted, {use.refused} refused, {use.subjects} subjects, "
                f"{line['first']} .. {line['last']}"
            )
    raise typer.Exit(EXIT_INTACT if intact else EXIT_BROKEN)


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")
