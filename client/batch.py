"""Enrolling many subjects from a CSV listing: ``subject_id,image`` rows under a header line.

``read_batch`` reads the listing (image paths relative to its folder); ``enroll_row`` enrols one row and
keeps that row's own failures (its image, its face, the matcher's answer about it) in the result, so a batch
goes on past them; any other error (the matcher, the token, the trust) is raised and stops the batch.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from pathlib import Path

from veilface.crypto import FaceError, ImageError, InvalidEmbeddingError, ServiceError, VeilfaceError

from .api import Client, Enrollment

__all__ = ["BATCH_COLUMNS", "ROW_STATUSES", "BatchFileError", "BatchRow", "RowResult", "enroll_row", "read_batch"]

BATCH_COLUMNS = ("subject_id", "image")
#: The matcher's answers about one row (subject exists, template refused or too large).
ROW_STATUSES = frozenset({409, 413, 422})


class BatchFileError(VeilfaceError):
    """A listing that cannot be read, lacks a column, or has a row without a subject or an image."""


@dataclass(frozen=True)
class BatchRow:
    subject_id: str
    image: Path


@dataclass(frozen=True)
class RowResult:
    """One row's outcome: its enrolment, or why this row was not enrolled."""

    row: BatchRow
    enrollment: Enrollment | None = None
    error: str | None = None

    @property
    def enrolled(self) -> bool:
        return self.enrollment is not None

    def to_dict(self) -> dict[str, str | bool]:
        result: dict[str, str | bool] = {
            "subject_id": self.row.subject_id,
            "image": str(self.row.image),
            "enrolled": self.enrolled,
        }
        if self.enrollment is not None:
            result.update(asdict(self.enrollment))
        else:
            result["error"] = self.error or ""
        return result


def read_batch(listing: Path) -> list[BatchRow]:
    """The rows of ``listing``, whose header names the columns subject_id and image (in any order)."""
    try:
        with listing.open(newline="", encoding="utf-8") as stream:
            reader = csv.DictReader(stream)
            header = {name.strip() for name in reader.fieldnames or ()}
            if not set(BATCH_COLUMNS) <= header:
                raise BatchFileError(f"{listing} must be a CSV file whose header has the columns subject_id,image")
            rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BatchFileError(f"cannot read {listing}: {exc}") from None
    out = []
    for number, row in enumerate(rows, start=2):
        subject, image = row.get("subject_id", ""), row.get("image", "")
        if not subject or not image:
            raise BatchFileError(f"{listing}, line {number}: subject_id and image must both be given")
        out.append(BatchRow(subject, listing.parent / image))
    return out


def enroll_row(client: Client, row: BatchRow, *, replace: bool = False, take_largest: bool = False) -> RowResult:
    """Enrol ``row``; a failure of this row is in the result, any other error is raised."""
    try:
        enrollment = client.enroll(row.subject_id, row.image, replace=replace, take_largest=take_largest)
    except (ImageError, FaceError, InvalidEmbeddingError) as exc:
        return RowResult(row, error=exc.message)
    except ServiceError as exc:
        if exc.status not in ROW_STATUSES:
            raise
        return RowResult(row, error=exc.message)
    return RowResult(row, enrollment=enrollment)
