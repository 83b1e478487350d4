"""The write layer's erasure rule: old presence of an erased person is not written again.

After ``receiver forget`` (:mod:`receiver.processing.erasure`) a person can
come back only with **new** data. Data about their presence *before* the
erasure can still arrive: a late webhook with a new delivery id (a
participantLeft of the erased session), or a reconciliation or backfill
that fetches the session's participants from the provider, which still
holds them until they are erased there too. So both writers of
``participant_intervals`` (webhook events in :mod:`receiver.processing.apply`,
REST reconciliation in :mod:`receiver.processing.reconcile`) ask
:meth:`ErasedSubjects.covers` first and drop a participant whose
identifiers match an erasure made *after* the presence began.

``erasures`` holds only SHA-256 digests of the identifiers (:func:`subject_digest`),
so the rule compares digests of the incoming participant's key, custom
participant id, user id and peer id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from receiver.db.models import Erasure

__all__ = ["subject_digest", "ErasedSubjects"]


def subject_digest(value: str) -> str:
    """Hex SHA-256 of an identifier (UTF-8), as stored in ``erasures.subject_sha256``."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class ErasedSubjects:
    """Erased identifiers: digest -> time (UTC) of the latest erasure of it.

    Load with :meth:`load` once per transaction (one small GROUP BY; the
    table holds one row per erasure request).
    """

    erased_at: dict[str, datetime] = field(default_factory=dict)

    @classmethod
    def load(cls, connection: Connection) -> ErasedSubjects:
        """Read ``erasures`` (digest and latest ``erased_at`` of each)."""
        rows = connection.execute(
            select(Erasure.subject_sha256, func.max(Erasure.erased_at)).group_by(Erasure.subject_sha256)
        ).all()
        return cls({digest: erased_at for digest, erased_at in rows})

    def covers(self, identifiers: Iterable[str | None], at: datetime | None) -> bool:
        """True when presence starting at ``at`` (UTC) belongs to an erased person: drop it.

        ``identifiers``: the participant's key, custom participant id, user id
        and peer id (None and empty ones are skipped). Presence that began
        before the erasure of any of them is old data; presence beginning at
        or after it is new. ``at`` None (no time known) counts as old.
        """
        if not self.erased_at:
            return False
        for value in identifiers:
            if not value:
                continue
            erased_at = self.erased_at.get(subject_digest(value))
            if erased_at is not None and (at is None or at < erased_at):
                return True
        return False
