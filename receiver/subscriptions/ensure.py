"""The Dyte webhook subscription of this service: ensured by ``receiver subscribe`` and at start-up.

Goal: exactly one Dyte webhook named SUBSCRIPTION_NAME points at
``PUBLIC_URL + /webhooks/dyte``, subscribed to SUBSCRIPTION_EVENTS and
enabled. :func:`ensure_subscription` gets there with the fewest write calls
(spec ``/webhooks`` CRUD, via :class:`~receiver.providers.dyte.client.DyteClient`):

* none of ours points at the URL: ``POST /webhooks``, then list again and
  delete our extras (create-then-dedupe; see below);
* several of ours point at the URL: keep the oldest (``created_at``, then
  ``id``), ``DELETE`` the others;
* the kept one has other events (compared as sets) or is disabled: one
  ``PATCH /webhooks/{id}`` with only the differing fields;
* otherwise no write call at all;
* ``prune``: ``DELETE`` webhooks named SUBSCRIPTION_NAME that point
  elsewhere. Webhooks with another name are never touched (one that also
  points at our URL is reported, not deleted).

"Ours" means "has the configured name". The kept webhook is recorded in
``managed_subscriptions`` (:class:`~receiver.db.models.ManagedSubscription`);
rows of webhooks that no longer exist at Dyte are removed.

Replicas starting together: the whole ensure runs under a lock
(:func:`subscription_lock`: ``pg_try_advisory_lock`` polled on a dedicated
PostgreSQL connection; an exclusive ``flock`` on ``<database file>.subscriptions.lock``
for SQLite, which is always on one host). Create-then-dedupe makes the
result hold without the lock too (replicas on different databases): every
replica that created lists again and deletes all of ours at the URL but the
oldest; the replica that lists last sees every creation, so exactly one
survives.

Start-up (:func:`subscription_background_task`, wired by
:class:`SubscriptionWiring` in ``build_service_app``) retries with
:class:`~receiver.retry.RetryPolicy` back-off and never blocks readiness;
its state is in ``app.state.subscription_state`` (shown by ``/readyz``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog
from sqlalchemy import delete, inspect, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session as OrmSession
from starlette.applications import Starlette

from receiver.db.models import ManagedSubscription
from receiver.errors import ReceiverError
from receiver.providers.dyte.client import (
    DyteAuthError,
    DyteClient,
    DyteNotFound,
    DyteRateLimited,
    DyteResponseError,
    DyteStatusError,
)
from receiver.providers.dyte.rest_models import ApiWebhook
from receiver.retry import RetryPolicy
from receiver.settings import ALL_EVENTS, Settings

__all__ = [
    "WEBHOOK_PATH",
    "SubscriptionError",
    "SubscriptionConfigError",
    "SubscriptionLockTimeout",
    "SubscriptionSpec",
    "Action",
    "EnsureResult",
    "webhook_url",
    "same_url",
    "missing_subscription_settings",
    "subscription_disabled_reason",
    "ensure_subscription",
    "subscription_lock",
    "managed_webhook_ids",
    "ManagedWebhookIds",
    "subscription_background_task",
    "SubscriptionWiring",
]

log = structlog.get_logger("receiver.subscriptions.ensure")

#: Path of the webhook endpoint, appended to PUBLIC_URL.
WEBHOOK_PATH = "/webhooks/dyte"
#: Seconds to wait for another replica's ensure before giving up (the attempt then fails and is retried).
LOCK_TIMEOUT_SECONDS = 60.0
#: Seconds between two tries of a busy lock.
LOCK_POLL_SECONDS = 0.1
#: Key of the PostgreSQL session-level advisory lock (64-bit, derived from a fixed name).
PG_LOCK_KEY = int.from_bytes(hashlib.sha256(b"receiver.subscriptions.ensure").digest()[:8], "big", signed=True)
#: Seconds the webhook-id cache of :class:`ManagedWebhookIds` is trusted before re-reading the table.
WEBHOOK_IDS_MAX_AGE_SECONDS = 5.0
#: Characters of an error kept in ``subscription_state["last_error"]``.
ERROR_CHARS = 300

_WRITE_KINDS = frozenset({"create", "update", "delete_duplicate", "prune"})


# --------------------------------------------------------------------------- errors


class SubscriptionError(ReceiverError):
    """Ensuring the subscription failed for a reason other than a Dyte API error."""


class SubscriptionConfigError(SubscriptionError):
    """PUBLIC_URL, DYTE_ORG_ID or DYTE_API_KEY missing, or PUBLIC_URL not an absolute http(s) URL."""


class SubscriptionLockTimeout(SubscriptionError):
    """Another replica held the subscription lock for longer than the timeout (seconds)."""


# --------------------------------------------------------------------------- configuration


def webhook_url(public_url: str, path: str = WEBHOOK_PATH) -> str:
    """The delivery URL for PUBLIC_URL: ``PUBLIC_URL + path`` (not doubled if already there).

    ``path`` is the provider's endpoint (:func:`receiver.providers.registry.webhook_path`):
    ``/webhooks/dyte`` (the default) or ``/webhooks/realtimekit``.

    Raises:
        SubscriptionConfigError: ``public_url`` is not an absolute http(s) URL.
    """
    base = (public_url or "").strip().rstrip("/")
    try:
        parsed = httpx.URL(base)
    except Exception:  # httpx.InvalidURL and friends
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise SubscriptionConfigError(
            f"PUBLIC_URL must be an absolute http(s) URL such as https://hooks.example.com, got {public_url!r}"
        )
    return base if base.endswith(path) else base + path


def same_url(a: str | None, b: str | None) -> bool:
    """True when two webhook URLs are the same endpoint (scheme/host case, default port, trailing ``/`` ignored)."""
    if not a or not b:
        return False

    def key(value: str) -> tuple[Any, ...]:
        try:
            u = httpx.URL(value.strip())
        except Exception:
            return (value.strip(),)
        scheme = u.scheme.lower()
        port = u.port or {"http": 80, "https": 443}.get(scheme)
        return (scheme, u.host.lower(), port, u.path.rstrip("/") or "/", u.query)

    return key(a) == key(b)


def missing_subscription_settings(settings: Settings) -> list[str]:
    """Names of the environment variables that must be set to manage the webhook and are not (in a fixed order)."""
    missing = []
    if not (settings.public_url or "").strip():
        missing.append("PUBLIC_URL")
    return missing + settings.missing_api_settings()  # the chosen provider's (PROVIDER)


def subscription_disabled_reason(settings: Settings) -> str | None:
    """Why ``receiver serve`` would not ensure the subscription at start-up, or None when it will."""
    if not settings.subscription_ensure_on_start:
        return "SUBSCRIPTION_ENSURE_ON_START is false"
    missing = missing_subscription_settings(settings)
    if missing:
        return f"{', '.join(missing)} not set"
    return None


@dataclass(frozen=True)
class SubscriptionSpec:
    """What the managed webhook must look like: spec ``WebhookRequest`` fields ``name``, ``url``, ``events`` (enabled is always true)."""

    name: str
    url: str
    events: tuple[str, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> SubscriptionSpec:
        """SUBSCRIPTION_NAME, PUBLIC_URL + the provider's path (``/webhooks/dyte`` or
        ``/webhooks/realtimekit``, per PROVIDER) and SUBSCRIPTION_EVENTS.

        Raises:
            SubscriptionConfigError: PUBLIC_URL or the provider's credentials
                are missing (the message names them), or PUBLIC_URL is not a URL.
        """
        from receiver.providers.registry import webhook_path

        missing = missing_subscription_settings(settings)
        if missing:
            raise SubscriptionConfigError(
                f"set {', '.join(missing)} to manage the {settings.provider_label} webhook subscription"
            )
        events = tuple(e for e in settings.subscription_events.split(",") if e) or ALL_EVENTS
        url = webhook_url(settings.public_url or "", webhook_path(settings.provider))
        return cls(name=settings.subscription_name, url=url, events=events)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Action:
    """One step of an ensure.

    Attributes:
        kind: ``create``, ``update``, ``delete_duplicate``, ``prune`` (write
            calls) or ``unchanged``.
        webhook_id: the webhook concerned (None for a create not done in a dry run).
        detail: human-readable detail (changed fields, URL of a pruned webhook).
        done: False in a dry run (the call was not made).
    """

    kind: str
    webhook_id: str | None
    detail: str = ""
    done: bool = True

    def describe(self) -> str:
        """One line: what was done, or would be done in a dry run."""
        dry = not self.done
        ident = self.webhook_id or ""
        if self.kind == "create":
            verb = "would create" if dry else "created"
            return f"{verb} webhook {ident} {self.detail}".replace("  ", " ")
        if self.kind == "update":
            return f"{'would update' if dry else 'updated'} webhook {ident}: {self.detail}"
        if self.kind == "delete_duplicate":
            return f"{'would delete' if dry else 'deleted'} duplicate webhook {ident} {self.detail}".rstrip()
        if self.kind == "prune":
            return f"{'would prune' if dry else 'pruned'} webhook {ident} {self.detail}".rstrip()
        return f"webhook {ident} is up to date {self.detail}; nothing to do".replace("  ", " ")


@dataclass
class EnsureResult:
    """Outcome of :func:`ensure_subscription`.

    Attributes:
        spec: what was ensured.
        webhook_id: the webhook kept (None only in a dry run that would create one).
        actions: the steps, in order.
        dry_run: nothing was written (at Dyte or in the database).
        others_at_url: ids of webhooks with another name that also point at
            our URL (left alone).
        ours_elsewhere: ids of webhooks with our name pointing elsewhere that
            were not pruned (``prune`` was off).
    """

    spec: SubscriptionSpec
    webhook_id: str | None
    actions: list[Action] = field(default_factory=list)
    dry_run: bool = False
    others_at_url: list[str] = field(default_factory=list)
    ours_elsewhere: list[str] = field(default_factory=list)

    @property
    def write_count(self) -> int:
        """Write calls made (or, in a dry run, that would be made)."""
        return sum(1 for a in self.actions if a.kind in _WRITE_KINDS)

    @property
    def summary(self) -> str:
        """Comma-separated action kinds, e.g. ``"create"`` or ``"unchanged"``."""
        return ",".join(dict.fromkeys(a.kind for a in self.actions)) or "unchanged"

    def lines(self) -> list[str]:
        """What was done (or would be done), one line per action, then notes."""
        out = [a.describe() for a in self.actions]
        if self.dry_run:
            out.append("dry run: nothing was changed")
        if self.others_at_url:
            out.append(
                f"note: webhook(s) not named {self.spec.name!r} also point at {self.spec.url}: "
                f"{', '.join(self.others_at_url)} (left alone; Dyte delivers each event once per webhook)"
            )
        if self.ours_elsewhere:
            out.append(
                f"note: {len(self.ours_elsewhere)} webhook(s) named {self.spec.name!r} point elsewhere: "
                f"{', '.join(self.ours_elsewhere)}; `receiver subscribe --prune` deletes them"
            )
        return out


# --------------------------------------------------------------------------- locking


@asynccontextmanager
async def subscription_lock(
    engine: Engine, *, timeout_seconds: float = LOCK_TIMEOUT_SECONDS, poll_seconds: float = LOCK_POLL_SECONDS
) -> AsyncIterator[None]:
    """Hold the cross-replica subscription lock for the ``async with`` body.

    PostgreSQL: session-level ``pg_try_advisory_lock(PG_LOCK_KEY)`` on a
    dedicated connection, polled every ``poll_seconds``; unlocked at the end
    (the connection is discarded if that fails, which ends the session and
    the lock). SQLite: exclusive ``flock`` on ``<database file>.subscriptions.lock``
    (released by the OS if the process dies). In-memory SQLite, other
    databases or systems without ``fcntl``: no lock (create-then-dedupe still
    leaves one webhook).

    Raises:
        SubscriptionLockTimeout: not acquired within ``timeout_seconds``.
        sqlalchemy.exc.SQLAlchemyError: the database is unreachable.
    """
    dialect = engine.dialect.name
    if dialect == "postgresql":
        async with _pg_lock(engine, timeout_seconds, poll_seconds):
            yield
        return
    database = engine.url.database if dialect == "sqlite" else None
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        fcntl = None  # type: ignore[assignment]
    if not database or database == ":memory:" or database.startswith("file:") or fcntl is None:
        yield
        return
    fd = os.open(f"{database}.subscriptions.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise SubscriptionLockTimeout(
                        f"another replica held the subscription lock for more than {timeout_seconds:g} s"
                    ) from None
                await asyncio.sleep(poll_seconds)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@asynccontextmanager
async def _pg_lock(engine: Engine, timeout_seconds: float, poll_seconds: float) -> AsyncIterator[None]:
    from sqlalchemy import text

    def try_lock(connection: Any) -> bool:
        got = bool(connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": PG_LOCK_KEY}).scalar())
        connection.commit()  # session-level lock: survives the end of the transaction
        return got

    def unlock(connection: Any) -> bool:
        released = bool(connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": PG_LOCK_KEY}).scalar())
        connection.commit()
        return released

    connection = await asyncio.to_thread(engine.connect)
    clean = False
    try:
        deadline = time.monotonic() + timeout_seconds
        while not await asyncio.to_thread(try_lock, connection):
            if time.monotonic() >= deadline:
                clean = True
                raise SubscriptionLockTimeout(
                    f"another replica held the subscription lock for more than {timeout_seconds:g} s"
                )
            await asyncio.sleep(poll_seconds)
        try:
            yield
        finally:
            try:
                clean = await asyncio.to_thread(unlock, connection)
            except Exception:
                log.warning("subscription_unlock_failed")
    finally:
        if not clean:
            # Never hand a connection that may still hold the lock back to the pool.
            connection.invalidate()
        await asyncio.to_thread(connection.close)


# --------------------------------------------------------------------------- ensure


def _age_key(hook: ApiWebhook) -> tuple[Any, ...]:
    created = hook.created_at or datetime.max.replace(tzinfo=UTC)
    return (hook.created_at is None, created, hook.id)


def _check_schema(engine: Engine) -> None:
    if not inspect(engine).has_table(ManagedSubscription.__tablename__):
        raise SubscriptionError("the database has no managed_subscriptions table: run `receiver migrate`")


async def _delete(client: DyteClient, webhook_id: str) -> bool:
    """DELETE a webhook; False when it was already gone (another replica deleted it)."""
    try:
        await client.delete_webhook(webhook_id)
    except DyteNotFound:
        return False
    return True


def _event_diff(current: Iterable[str], wanted: Sequence[str]) -> str:
    have, want = set(current), set(wanted)
    parts = [f"+{e}" for e in wanted if e not in have] + [f"-{e}" for e in sorted(have - want)]
    return "events " + " ".join(parts)


def _record(
    engine: Engine,
    spec: SubscriptionSpec,
    keeper: ApiWebhook,
    present_ids: set[str],
    now: datetime,
) -> None:
    """Upsert the kept webhook into managed_subscriptions; drop rows of webhooks no longer at Dyte."""
    values = {
        "webhook_id": keeper.id,
        "name": keeper.name or spec.name,
        "url": keeper.url or spec.url,
        "events": json.dumps(list(keeper.events or spec.events)),
        "created_at": keeper.created_at or now,
        "last_ensured_at": now,
    }
    update = {k: values[k] for k in ("name", "url", "events", "last_ensured_at")}
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    statement = dialect_insert(ManagedSubscription).values(**values)
    statement = statement.on_conflict_do_update(index_elements=["webhook_id"], set_=update)
    with OrmSession(engine) as db, db.begin():
        db.execute(statement)
        known = set(db.execute(select(ManagedSubscription.webhook_id)).scalars())
        gone = known - present_ids - {keeper.id}
        if gone:
            db.execute(delete(ManagedSubscription).where(ManagedSubscription.webhook_id.in_(gone)))


async def ensure_subscription(
    client: DyteClient,
    spec: SubscriptionSpec,
    *,
    engine: Engine | None = None,
    dry_run: bool = False,
    prune: bool = False,
    lock: bool = True,
    lock_timeout_seconds: float = LOCK_TIMEOUT_SECONDS,
) -> EnsureResult:
    """Make exactly one webhook named ``spec.name`` point at ``spec.url`` with ``spec.events``, enabled.

    Uses ``GET /webhooks``, and only when needed ``POST /webhooks`` (spec
    ``WebhookRequest``: name, url, events, enabled), ``PATCH /webhooks/{id}``
    (``events`` and/or ``enabled``) and ``DELETE /webhooks/{id}``; see the
    module docstring for the rules. Webhooks are compared on the spec
    ``Webhook`` fields ``name``, ``url``, ``events``, ``enabled`` and
    ``created_at`` (oldest kept).

    Args:
        client: an open Dyte client (not closed here).
        spec: the wanted webhook.
        engine: the service database; when given (and not a dry run) the
            ensure runs under :func:`subscription_lock` and the kept webhook
            is recorded in ``managed_subscriptions``.
        dry_run: only list; report what would be done; write nothing.
        prune: also delete webhooks named ``spec.name`` pointing elsewhere.
        lock: take the cross-replica lock (tests turn it off to exercise
            create-then-dedupe alone).
        lock_timeout_seconds: how long to wait for another replica, seconds.

    Raises:
        DyteAPIError: any error of the client (DyteAuthError for bad
            credentials, DyteTransportError when Dyte is unreachable, ...).
        SubscriptionLockTimeout: the lock stayed busy.
        SubscriptionError: the database is not migrated.
        sqlalchemy.exc.SQLAlchemyError: the database failed.
    """
    use_db = engine is not None and not dry_run
    if use_db:
        assert engine is not None
        await asyncio.to_thread(_check_schema, engine)
    if use_db and lock:
        assert engine is not None
        async with subscription_lock(engine, timeout_seconds=lock_timeout_seconds):
            return await _ensure(client, spec, engine, dry_run=False, prune=prune)
    return await _ensure(client, spec, engine if use_db else None, dry_run=dry_run, prune=prune)


async def _ensure(
    client: DyteClient, spec: SubscriptionSpec, engine: Engine | None, *, dry_run: bool, prune: bool
) -> EnsureResult:
    hooks = await client.list_webhooks()
    result = EnsureResult(spec=spec, webhook_id=None, dry_run=dry_run)
    result.others_at_url = [h.id for h in hooks if h.name != spec.name and same_url(h.url, spec.url)]
    elsewhere = [h for h in hooks if h.name == spec.name and not same_url(h.url, spec.url)]
    here = sorted((h for h in hooks if h.name == spec.name and same_url(h.url, spec.url)), key=_age_key)
    present = {h.id for h in hooks}
    actions = result.actions
    what = f"{spec.name!r} -> {spec.url} ({len(spec.events)} events)"

    keeper: ApiWebhook | None
    if not here:
        if dry_run:
            actions.append(Action("create", None, what, done=False))
            keeper = None
        else:
            created = await client.create_webhook(spec.name, spec.url, spec.events, enabled=True)
            actions.append(Action("create", created.id, what))
            log.info("subscription_created", webhook_id=created.id, url=spec.url, name=spec.name)
            # Create-then-dedupe: another replica may have created one at the same time.
            hooks = await client.list_webhooks()
            present = {h.id for h in hooks} | {created.id}
            here = [h for h in hooks if h.name == spec.name and same_url(h.url, spec.url)]
            if created.id not in {h.id for h in here}:
                here.append(created)
            here.sort(key=_age_key)
            keeper = here[0]
    else:
        keeper = here[0]
    if keeper is not None:
        for extra in here[1:]:
            detail = f"(keeping the oldest, {keeper.id})"
            if dry_run:
                actions.append(Action("delete_duplicate", extra.id, detail, done=False))
                continue
            await _delete(client, extra.id)
            present.discard(extra.id)
            actions.append(Action("delete_duplicate", extra.id, detail))
            log.info("subscription_duplicate_deleted", webhook_id=extra.id, kept=keeper.id)

        changes: dict[str, Any] = {}
        notes = []
        if set(keeper.events) != set(spec.events):
            changes["events"] = list(spec.events)
            notes.append(_event_diff(keeper.events, spec.events))
        if not keeper.enabled:
            changes["enabled"] = True
            notes.append("enabled false -> true")
        if changes:
            if dry_run:
                actions.append(Action("update", keeper.id, "; ".join(notes), done=False))
            else:
                keeper = await client.update_webhook(keeper.id, **changes)
                actions.append(Action("update", keeper.id, "; ".join(notes)))
                log.info("subscription_updated", webhook_id=keeper.id, changed=sorted(changes))
        elif not any(a.kind == "create" for a in actions):
            actions.append(Action("unchanged", keeper.id, f"({spec.url}, {len(keeper.events)} events, enabled)"))
        result.webhook_id = keeper.id

    for hook in elsewhere:
        if not prune:
            result.ours_elsewhere.append(hook.id)
            continue
        detail = f"(pointed at {hook.url})"
        if dry_run:
            actions.append(Action("prune", hook.id, detail, done=False))
            continue
        await _delete(client, hook.id)
        present.discard(hook.id)
        actions.append(Action("prune", hook.id, detail))
        log.info("subscription_pruned", webhook_id=hook.id, url=hook.url)

    if engine is not None and keeper is not None:
        await asyncio.to_thread(_record, engine, spec, keeper, present, datetime.now(UTC))
    return result


# --------------------------------------------------------------------------- allowed webhook ids


def managed_webhook_ids(engine: Engine) -> set[str]:
    """Every webhook id in ``managed_subscriptions`` (raises SQLAlchemyError when the database fails)."""
    with OrmSession(engine) as db:
        return set(db.execute(select(ManagedSubscription.webhook_id)).scalars())


class ManagedWebhookIds:
    """The ``allowed_webhook_ids`` callable of :func:`receiver.web.app.create_app`: ids of managed subscriptions.

    Calls return an in-memory set, re-read from ``managed_subscriptions`` at
    most every ``max_age_seconds`` (a failed read keeps the previous set and
    is retried after the same interval). :meth:`reload` re-reads at once
    (done after every successful ensure).

    Args:
        engine: the database, or a zero-argument callable returning it
            (the app's engine exists only once its lifespan started); may be
            bound later with :meth:`bind`.
        max_age_seconds: cache lifetime, seconds.
        clock: monotonic clock, seconds (tests pass a fake).
    """

    def __init__(
        self,
        engine: Engine | Callable[[], Engine] | None = None,
        *,
        max_age_seconds: float = WEBHOOK_IDS_MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self.max_age_seconds = max_age_seconds
        self._clock = clock
        self._ids: set[str] = set()
        self._loaded_at: float | None = None

    def bind(self, engine: Engine | Callable[[], Engine]) -> None:
        """Set the database (or a callable returning it) to read from."""
        self._engine = engine
        self._loaded_at = None

    def _resolve(self) -> Engine:
        engine = self._engine
        if engine is None:
            raise RuntimeError("ManagedWebhookIds is not bound to a database")
        return engine if isinstance(engine, Engine) else engine()

    def reload(self) -> set[str]:
        """Re-read the table now and return the new set (raises on database errors)."""
        ids = managed_webhook_ids(self._resolve())
        self._ids = ids
        self._loaded_at = self._clock()
        return ids

    def __call__(self) -> set[str]:
        """The managed webhook ids, refreshed when older than ``max_age_seconds``."""
        now = self._clock()
        if self._loaded_at is None or now - self._loaded_at >= self.max_age_seconds:
            try:
                self.reload()
            except Exception as exc:  # keep serving the last known set
                self._loaded_at = now
                log.warning("managed_webhook_ids_unavailable", error=type(exc).__name__)
        return self._ids


# --------------------------------------------------------------------------- start-up


def _is_permanent(exc: BaseException) -> bool:
    """Errors a retry will not fix without an operator: bad credentials, other 4xx, malformed answers, config."""
    if isinstance(exc, (DyteAuthError, DyteResponseError, SubscriptionConfigError)):
        return True
    if isinstance(exc, DyteStatusError) and not isinstance(exc, DyteRateLimited):
        return exc.status_code < 500
    return isinstance(exc, SubscriptionError) and not isinstance(exc, SubscriptionLockTimeout)


def _error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return " ".join(text.split())[:ERROR_CHARS]


def subscription_background_task(
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    retry: RetryPolicy | None = None,
    lock_timeout_seconds: float = LOCK_TIMEOUT_SECONDS,
) -> Callable[[Starlette], Awaitable[None]]:
    """A ``background_tasks`` job for :func:`receiver.web.app.create_app` that ensures the subscription.

    The job runs :func:`ensure_subscription` (no pruning) on the app's engine
    until it succeeds, sleeping ``retry.delay_seconds(attempt)`` after a
    transient failure (Dyte unreachable, 5xx, 429, database or lock busy) and
    ``retry.max_seconds`` after a permanent one (401/403, other 4xx,
    malformed answer, not migrated). Default ``retry``: base
    SUBSCRIPTION_RETRY_BASE_SECONDS, cap SUBSCRIPTION_RETRY_MAX_SECONDS,
    jitter 0.5, unlimited attempts. Each attempt's Dyte calls get at most 2
    tries of their own (the job is the outer retry).

    It updates ``app.state.subscription_state`` in place (``/readyz`` shows
    it): ``state`` (``ensuring`` -> ``ok``, or ``retrying``/``error`` while
    failing; ``disabled`` when credentials or PUBLIC_URL are missing),
    ``webhook_id``, ``last_error``, ``attempts``, ``url``,
    ``next_retry_seconds``, ``action`` and ``ensured_at`` (ISO 8601 UTC); and
    logs ``subscription_ensured`` / ``subscription_ensure_failed``. After
    success it reloads ``app.state.allowed_webhook_ids`` when that is a
    :class:`ManagedWebhookIds`. Readiness never waits for it.

    Args:
        settings: service settings (PUBLIC_URL, DYTE_*, SUBSCRIPTION_*).
        transport: httpx transport for the Dyte client (tests: the sandbox).
        retry: back-off between attempts (``max_attempts`` is ignored).
        lock_timeout_seconds: wait for another replica's ensure, seconds.
    """
    base = settings.subscription_retry_base_seconds
    policy = retry or RetryPolicy(
        base_seconds=base, max_seconds=max(base, settings.subscription_retry_max_seconds), max_attempts=1 << 30
    )
    inner_base = min(0.5, policy.base_seconds)
    inner_retry = RetryPolicy(base_seconds=inner_base, max_seconds=max(inner_base, 2.0), max_attempts=2)

    async def ensure_subscription_job(app: Starlette) -> None:
        from receiver.providers.registry import build_client as build_dyte_client

        state: dict[str, Any] = app.state.subscription_state
        try:
            spec = SubscriptionSpec.from_settings(settings)
        except SubscriptionConfigError as exc:
            reason = _error_text(exc)
            state.update(state="disabled" if missing_subscription_settings(settings) else "error", last_error=reason)
            log.error("subscription_not_ensured", error=reason)
            return
        client = build_dyte_client(settings, transport=transport)
        assert client is not None  # credentials checked by from_settings
        client.retry = inner_retry
        state.update(state="ensuring", url=spec.url, webhook_id=None, last_error=None, attempts=0)
        log.info("subscription_ensuring", url=spec.url, name=spec.name, events=len(spec.events))
        attempt = 0
        try:
            while True:
                attempt += 1
                state["attempts"] = attempt
                try:
                    result = await ensure_subscription(
                        client, spec, engine=app.state.engine, lock_timeout_seconds=lock_timeout_seconds
                    )
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    permanent = _is_permanent(exc)
                    delay = policy.max_seconds if permanent else policy.delay_seconds(attempt)
                    state.update(
                        state="error" if permanent else "retrying",
                        last_error=_error_text(exc),
                        next_retry_seconds=round(delay, 3),
                    )
                    log.warning(
                        "subscription_ensure_failed",
                        state=state["state"],
                        error=state["last_error"],
                        attempt=attempt,
                        retry_in_seconds=round(delay, 3),
                    )
                    await asyncio.sleep(delay)
                    continue
                state.update(
                    state="ok",
                    webhook_id=result.webhook_id,
                    last_error=None,
                    next_retry_seconds=None,
                    action=result.summary,
                    ensured_at=datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                )
                log.info(
                    "subscription_ensured",
                    webhook_id=result.webhook_id,
                    action=result.summary,
                    writes=result.write_count,
                    attempts=attempt,
                )
                allowed = getattr(app.state, "allowed_webhook_ids", None)
                if isinstance(allowed, ManagedWebhookIds):
                    try:
                        await asyncio.to_thread(allowed.reload)
                    except Exception as exc:
                        log.warning("managed_webhook_ids_unavailable", error=type(exc).__name__)
                return
        finally:
            await client.aclose()

    return ensure_subscription_job


class SubscriptionWiring:
    """What ``build_service_app`` adds for the subscription: pass the attributes to ``create_app``, then :meth:`attach`.

    Attributes:
        allowed_webhook_ids: a :class:`ManagedWebhookIds` when
            SUBSCRIPTION_ENFORCE_WEBHOOK_ID is true, else None.
        background_tasks: ``[subscription_background_task(...)]``, or empty
            when :func:`subscription_disabled_reason` gives a reason.
        disabled_reason: that reason, or None.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.allowed_webhook_ids = ManagedWebhookIds() if settings.subscription_enforce_webhook_id else None
        self.disabled_reason = subscription_disabled_reason(settings)
        self.background_tasks: list[Callable[[Starlette], Awaitable[None]]] = (
            [] if self.disabled_reason else [subscription_background_task(settings, transport=transport, retry=retry)]
        )

    def attach(self, app: Starlette) -> None:
        """Bind the webhook-id cache to the app's engine and set the initial ``subscription_state``."""
        if self.allowed_webhook_ids is not None:
            self.allowed_webhook_ids.bind(lambda: app.state.engine)
        state: dict[str, Any] = app.state.subscription_state
        if self.disabled_reason:
            state.update(state="disabled", reason=self.disabled_reason)
        else:
            state.update(state="ensuring", webhook_id=None, last_error=None, attempts=0)
