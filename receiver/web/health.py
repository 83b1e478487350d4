"""Readiness state shared by the HTTP app: database reachability, migrations, subscription.

``/healthz`` says the process is alive; ``/readyz`` answers 200 only when the
database answers and is migrated to head (details in the JSON body).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

from receiver.db.engine import current_revision, head_revision

__all__ = ["HealthState"]


@dataclass
class HealthState:
    """Mutable health facts; the receive path records database errors here."""

    engine: Engine
    last_db_error: str | None = None
    last_db_error_at: float | None = None
    subscription: dict[str, Any] = field(default_factory=lambda: {"state": "disabled"})
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record_db_error(self, exc: BaseException) -> None:
        """Remember a database failure seen by a request (shown by /readyz)."""
        with self._lock:
            self.last_db_error = type(exc).__name__
            self.last_db_error_at = time.time()

    def check(self) -> tuple[bool, dict[str, Any]]:
        """Run the readiness checks now; returns (ready, detail)."""
        detail: dict[str, Any] = {"subscription": dict(self.subscription)}  # shared dict, updated in place
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            revision = current_revision(self.engine)
            head = head_revision()
            detail["database"] = {"reachable": True, "revision": revision, "head": head}
            migrated = revision == head
            if not migrated:
                detail["database"]["error"] = "migrations not at head: run `receiver migrate`"
            ready = migrated
        except Exception as exc:  # any driver error means not ready
            self.record_db_error(exc)
            detail["database"] = {"reachable": False, "error": type(exc).__name__}
            ready = False
        if self.last_db_error:
            detail["database"]["last_error"] = self.last_db_error
        return ready, detail
