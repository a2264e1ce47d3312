"""The one error printer of the ``veilface`` command, and its exit codes.

Exit codes (click's conventions: usage errors exit 2, messages go to standard error as "Error: ..."):

    0  EXIT_OK             done; an intact audit chain
       EXIT_MATCH          a verification that matched
    1  EXIT_NO_MATCH       a verification that did not match
       EXIT_BROKEN         an audit chain that is broken (or lost its anchor)
       EXIT_BEHIND         a database whose schema is behind this release's ("db current")
    2  EXIT_USAGE          a bad option or argument; a missing token, key file, CSV column or database
    3  EXIT_FAILURE        anything veilface refused or could not do: every VeilfaceError not listed below,
                           and a missing optional extra ("pip install 'veilface[server]'")
    4  EXIT_PROBE_REFUSED  the authority refused the probe: not a normalised embedding (ProbeRefusedError)

Commands raise VeilfaceError and let the root command report it (``reported``), with the traceback first under
``--verbose``; they call ``fail`` only for errors found by the command line itself.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from veilface.crypto import VeilfaceError

EXIT_OK = 0
EXIT_MATCH = 0
EXIT_NO_MATCH = 1
EXIT_BROKEN = 1
EXIT_BEHIND = 1
EXIT_USAGE = 2
EXIT_FAILURE = 3
EXIT_PROBE_REFUSED = 4


def print_error(message: str) -> None:
    """One 'Error: ...' line on standard error."""
    typer.echo(f"Error: {message}", err=True)


def fail(message: str, code: int = EXIT_FAILURE) -> typer.Exit:
    """Print one 'Error: ...' line on standard error; return the Exit to raise."""
    print_error(message)
    return typer.Exit(code)


def exit_code(exc: VeilfaceError) -> int:
    """The table's exit code for an error veilface raised on purpose."""
    # Imported here: only a client command can raise it, and only the error path pays for the import.
    from veilface.client.api import ProbeRefusedError

    return EXIT_PROBE_REFUSED if isinstance(exc, ProbeRefusedError) else EXIT_FAILURE


def report(exc: VeilfaceError, *, verbose: bool = False) -> typer.Exit:
    """Print ``exc`` as one 'Error: ...' line (the traceback first if ``verbose``); return the Exit to raise."""
    if verbose:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    code = exit_code(exc)
    hint = " (the probe was not a normalised embedding)" if code == EXIT_PROBE_REFUSED else ""
    return fail(exc.message + hint, code)


@contextmanager
def reported(*, verbose: bool = False) -> Iterator[None]:
    """Report a VeilfaceError raised inside (``report``) and exit with its code; let anything else through."""
    try:
        yield
    except Exception as exc:
        # Not imported here: a VeilfaceError can only come from code that imported veilface.crypto.
        crypto = sys.modules.get("veilface.crypto")
        if crypto is None or not isinstance(exc, crypto.VeilfaceError):
            raise
        raise report(exc, verbose=verbose) from None
