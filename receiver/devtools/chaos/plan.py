"""What a chaos run is asked to do (:class:`ChaosOptions`) and what it measured (:class:`ChaosReport`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ChaosOptions", "ChaosReport"]


@dataclass
class ChaosOptions:
    """Knobs of one chaos run (see ``receiver bench chaos --help``)."""

    sessions: int = 50
    participants: int = 520
    drop: float = 0.2
    duplicate: float = 0.3
    reorder: float = 0.3
    rest_error_rate: float = 0.1
    database_url: str | None = None
    use_default_postgres: bool = True
    workers: int = 2
    seed: int = 7
    kill_worker: bool = True
    cut_database: bool = True
    cut_seconds: float = 4.0
    lease_seconds: float = 10.0
    rest_timeout_seconds: float = 2.0
    retry_delay: float = 0.5
    concurrency: int = 8
    drain_timeout: float = 240.0
    keep: bool = False


@dataclass
class ChaosReport:
    """Everything a run measured; ``problems`` empty means the run passed."""

    database: str = ""
    dialect: str = ""
    sessions: int = 0
    peers: int = 0
    recordings: int = 0
    livestreams: int = 0
    deliveries_planned: int = 0
    scheduled_posts: int = 0
    dropped: int = 0
    duplicated: int = 0
    reordered: int = 0
    http_requests: int = 0
    retried: int = 0
    acknowledged: int = 0
    status_counts: Counter = field(default_factory=Counter)
    failed_after_retries: int = 0
    failed_by_status: dict[str, int] = field(default_factory=dict)
    rest_calls: int = 0
    rest_faults: Counter = field(default_factory=Counter)
    kill: dict[str, Any] = field(default_factory=dict)
    cut: dict[str, Any] = field(default_factory=dict)
    sweeper_used: bool = False
    unique_sent: int = 0
    unique_acknowledged: int = 0
    event_rows: int = 0
    unique_stored: int = 0
    acknowledged_missing: list[str] = field(default_factory=list)
    stored_never_sent: list[str] = field(default_factory=list)
    event_status: dict[str, int] = field(default_factory=dict)
    task_status: dict[str, int] = field(default_factory=dict)
    duplicate_rows: dict[str, int] = field(default_factory=dict)
    sessions_equal: int = 0
    recordings_equal: int = 0
    recordings_total: int = 0
    attendance_problems: list[str] = field(default_factory=list)
    recording_problems: list[str] = field(default_factory=list)
    exit_codes: dict[str, int | None] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    log_dir: str | None = None

    @property
    def ok(self) -> bool:
        """True when nothing differs from the truth and every process behaved."""
        return not self.problems
