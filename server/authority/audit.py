"""Reading the audit chain back from outside the authority (``veilface audit verify``), offline or beside it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import inspect
from sqlalchemy.exc import SQLAlchemyError

from veilface.crypto import ConfigurationError, VeilfaceError
from veilface.server.authority.ledger import (
    ChainReport,
    TokenUse,
    audit_log,
    inspect_chain,
    open_ledger_database,
    token_use,
)

__all__ = ["DATABASE_FILE", "AuditCheck", "check_audit_log", "find_database"]

DATABASE_FILE = "authority.db"


def find_database(data: Path) -> Path | None:
    """DATA/authority.db (an authority's data directory) or DATA/authority/authority.db (``serve all``'s)."""
    candidates = (data / DATABASE_FILE, data / "authority" / DATABASE_FILE)
    return next((candidate for candidate in candidates if candidate.is_file()), None)


@dataclass(frozen=True)
class AuditCheck:
    """The chain as read, with the operator tokens' use if asked for; ``anchor`` as given."""

    report: ChainReport
    tokens: list[TokenUse]
    anchor: str | None = None

    @property
    def anchor_missing(self) -> bool:
        """An intact chain without the anchor: rows were rewritten or removed after it."""
        return self.anchor is not None and self.report.anchor_seq is None and self.report.broken is None

    @property
    def intact(self) -> bool:
        return self.report.broken is None and not self.anchor_missing


def check_audit_log(url: str, *, anchor: str | None = None, by_token: bool = False) -> AuditCheck:
    """Recompute the chain of the authority database at ``url``.

    Raises ConfigurationError when the database cannot be opened or holds no audit log, and VeilfaceError
    when it cannot be read.
    """
    database = open_ledger_database(url)
    try:
        if not inspect(database.engine).has_table(audit_log.name):
            raise ConfigurationError("this database holds no audit log (is it the authority's?)")
        report = inspect_chain(database, anchor=anchor)
        tokens = token_use(database) if by_token else []
    except SQLAlchemyError as exc:
        raise VeilfaceError(f"cannot read the audit log ({type(exc).__name__})") from None
    finally:
        database.dispose()
    return AuditCheck(report, tokens, anchor)
