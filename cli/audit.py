"""``veilface audit verify``: check the authority's hash-chained audit log (needs veilface[server]).

Exit 0 when the chain is intact (and holds the anchor, if one is given), 1 when it is broken (the first bad
row is named), 2 for usage errors (no database found), 3 when the database cannot be read.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

import typer

from veilface.cli.errors import EXIT_BROKEN, EXIT_OK, EXIT_USAGE, fail, print_error
from veilface.cli.options import Data, DatabaseUrl, Json
from veilface.crypto import ConfigurationError
from veilface.server.authority.audit import DATABASE_FILE, check_audit_log, find_database
from veilface.server.authority.ledger import ChainReport, TokenUse
from veilface.server.settings import sqlite_url

audit_app = typer.Typer(help="Check the authority's audit log.", no_args_is_help=True)


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


def _database_url(data: Path | None, database_url: str | None) -> str:
    if data is not None and database_url is None:
        database = find_database(data)
        if database is None:
            raise fail(
                f"no {DATABASE_FILE} in {data} or {data / 'authority'}; give the authority's data directory, the "
                "one given to 'serve all', or --database-url for PostgreSQL",
                EXIT_USAGE,
            )
        return sqlite_url(database)
    if database_url is not None and data is None:
        return database_url
    raise fail("give exactly one of --data DIR and --database-url URL", EXIT_USAGE)


@audit_app.command("verify")
def verify(
    data: Data[Path | None] = None,
    database_url: DatabaseUrl = None,
    anchor: Annotated[
        str | None,
        typer.Option(metavar="HASH", help="A last hash recorded earlier elsewhere; it must still be in the chain."),
    ] = None,
    by_token: Annotated[bool, typer.Option("--by-token", help="Also count decisions per operator token.")] = False,
    json_out: Json = False,
) -> None:
    """Recompute the audit log's hash chain and report the first altered, missing or unlinked row."""
    url = _database_url(data, database_url)
    try:
        check = check_audit_log(url, anchor=anchor, by_token=by_token)
    except ConfigurationError as exc:
        raise fail(exc.message, EXIT_USAGE) from None
    report = check.report
    if json_out:
        result: dict[str, Any] = {
            "intact": check.intact,
            "rows_checked": report.rows,
            "last_hash": report.last_hash,
            "first_bad_row": report.broken.first_bad_row if report.broken else None,
            "problem": report.broken.problem if report.broken else None,
            "detail": _problem_text(report) if report.broken else None,
        }
        if anchor is not None:
            result["anchor_row"] = report.anchor_seq
        if by_token:
            result["tokens"] = [_token_dict(use) for use in check.tokens]
        typer.echo(json.dumps(result))
    else:
        if report.broken is not None:
            print_error(f"audit chain broken: {_problem_text(report)}")
        elif check.anchor_missing:
            print_error("the anchor is not in the chain: rows were rewritten or removed after it")
        else:
            where = f", anchor at row {report.anchor_seq}" if report.anchor_seq is not None else ""
            typer.echo(f"audit chain intact: {report.rows} rows, last hash {report.last_hash}{where}")
        for use in check.tokens:
            line = _token_dict(use)
            typer.echo(
                f"token {use.token_id}: {use.granted} granted, {use.refused} refused, {use.subjects} subjects, "
                f"{line['first']} .. {line['last']}"
            )
    raise typer.Exit(EXIT_OK if check.intact else EXIT_BROKEN)
