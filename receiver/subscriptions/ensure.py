"""The ensure algorithm: make the provider's webhooks match :class:`~receiver.subscriptions.spec.SubscriptionSpec`.

Goal: exactly one Dyte webhook named SUBSCRIPTION_NAME points at
``PUBLIC_URL + /webhooks/dyte``, subscribed to SUBSCRIPTION_EVENTS and
enabled. :func:`ensure_subscription` gets there with the fewest write calls
(spec ``/webhooks`` CRUD, via a :class:`~receiver.providers.base.ProviderClient`
such as :class:`~receiver.providers.dyte.client.DyteClient`):

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
(:func:`receiver.subscriptions.lock.subscription_lock`: ``pg_try_advisory_lock`` polled on a dedicated
PostgreSQL connection; an exclusive ``flock`` on ``<database file>.subscriptions.lock``
for SQLite, which is always on one host). Create-then-dedupe makes the
result hold without the lock too (replicas on different databases): every
replica that created lists again and deletes all of ours at the URL but the
oldest; the replica that lists last sees every creation, so exactly one
survives.

Start-up (:func:`receiver.subscriptions.wiring.subscription_background_task`,
wired by :class:`~receiver.subscriptions.wiring.SubscriptionWiring` in
``build_service_app``) retries with
:class:`~receiver.retry.RetryPolicy` back-off and never blocks readiness;
its state is in ``app.state.subscription_state`` (shown by ``/readyz``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import delete, inspect, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session as OrmSession

from receiver.db.models import ManagedSubscription
from receiver.providers.base import ProviderClient
from receiver.providers.dyte.rest_models import ApiWebhook
from receiver.providers.errors import ProviderNotFound
from receiver.subscriptions.lock import LOCK_TIMEOUT_SECONDS, subscription_lock
from receiver.subscriptions.spec import SubscriptionError, SubscriptionSpec, same_url

__all__ = ["Action", "EnsureResult", "ensure_subscription"]

log = structlog.get_logger(__name__)

_WRITE_KINDS = frozenset({"create", "update", "delete_duplicate", "prune"})


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


# --------------------------------------------------------------------------- ensure


def _age_key(hook: ApiWebhook) -> tuple[Any, ...]:
    created = hook.created_at or datetime.max.replace(tzinfo=UTC)
    return (hook.created_at is None, created, hook.id)


def _check_schema(engine: Engine) -> None:
    if not inspect(engine).has_table(ManagedSubscription.__tablename__):
        raise SubscriptionError("the database has no managed_subscriptions table: run `receiver migrate`")


async def _delete(client: ProviderClient, webhook_id: str) -> bool:
    """DELETE a webhook; False when it was already gone (another replica deleted it)."""
    try:
        await client.delete_webhook(webhook_id)
    except ProviderNotFound:
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
    statement: postgresql.Insert | sqlite.Insert
    if engine.dialect.name == "postgresql":
        statement = postgresql.insert(ManagedSubscription).values(**values)
        statement = statement.on_conflict_do_update(index_elements=["webhook_id"], set_=update)
    else:
        statement = sqlite.insert(ManagedSubscription).values(**values)
        statement = statement.on_conflict_do_update(index_elements=["webhook_id"], set_=update)
    with OrmSession(engine) as db, db.begin():
        db.execute(statement)
        known = set(db.execute(select(ManagedSubscription.webhook_id)).scalars())
        gone = known - present_ids - {keeper.id}
        if gone:
            db.execute(delete(ManagedSubscription).where(ManagedSubscription.webhook_id.in_(gone)))


async def ensure_subscription(
    client: ProviderClient,
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
        ProviderAPIError: any error of the client (ProviderAuthError for bad
            credentials, ProviderTransportError when Dyte is unreachable, ...;
            :mod:`receiver.providers.errors`).
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
    client: ProviderClient, spec: SubscriptionSpec, engine: Engine | None, *, dry_run: bool, prune: bool
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
