"""Service configuration, read from the environment (and an optional ``.env`` file).

Every field maps to an upper-case environment variable of the same name
(``database_url`` -> ``DATABASE_URL``). The README's configuration table and
``receiver --help`` list them; a test checks that the README covers every
field. Nothing is read at import time: call :func:`load_settings`.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from receiver.enums import EventType
from receiver.errors import ConfigurationError

__all__ = [
    "Settings",
    "load_settings",
    "ALL_EVENTS",
    "PROVIDERS",
    "PROVIDER_LABELS",
    "settings_reference_markdown",
    "update_readme_table",
]

#: Every Dyte webhook event (the v2 spec enum): the default subscription.
ALL_EVENTS: tuple[str, ...] = tuple(name.value for name in EventType)

#: The values of PROVIDER.
PROVIDERS: tuple[str, ...] = ("dyte", "realtimekit")
#: How each provider is named in messages.
PROVIDER_LABELS: dict[str, str] = {"dyte": "Dyte", "realtimekit": "RealtimeKit"}


class Settings(BaseSettings):
    """All settings of the service. Durations are in seconds unless the name says otherwise."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    database_url: str = Field(
        "sqlite:///receiver.db",
        description="SQLAlchemy URL. Default: SQLite file receiver.db in the working directory. "
        "PostgreSQL: postgresql+psycopg://user@host:5432/db",
    )
    provider: Literal["dyte", "realtimekit"] = Field(
        "dyte",
        description="Meeting platform whose REST API the service calls (reconciliation, backfill, webhook "
        "subscription): dyte (HTTP Basic DYTE_ORG_ID:DYTE_API_KEY) or realtimekit (Cloudflare RealtimeKit, "
        "Bearer REALTIMEKIT_API_TOKEN). Deliveries of both platforms are accepted either way.",
    )
    dyte_webhook_public_key: str | None = Field(
        None,
        description="Webhook public key(s) to trust instead of the published key documents: PEM text, or a "
        "path to a PEM file. Several keys (a rotation, or Dyte's and RealtimeKit's during a move): concatenate "
        "the PEM blocks. When unset, keys are fetched from DYTE_WEBHOOK_KEYS_URL (dyte-* deliveries) and "
        "REALTIMEKIT_WEBHOOK_KEYS_URL (rtk-* deliveries).",
    )
    dyte_webhook_keys_url: str = Field(
        "https://api.dyte.io/.well-known/webhooks.json",
        description="Where Dyte publishes its webhook public key; fetched when no key is configured, "
        "cached, and re-fetched at most once per DYTE_WEBHOOK_KEYS_REFRESH_SECONDS when a signature fails. "
        "While it cannot be fetched (and no key is cached), deliveries get 503 (Dyte retries).",
    )
    dyte_webhook_keys_refresh_seconds: float = Field(
        60.0, description="Minimum seconds from a successful fetch of the key document to the next one."
    )
    dyte_webhook_keys_retry_max_seconds: float = Field(
        10.0,
        gt=0,
        description="Longest wait, seconds, before fetching the key document again after a failed fetch "
        "(back-off from 0.5 s, doubling); the first delivery after an outage ends is accepted within it.",
    )
    dyte_api_base_url: str = Field("https://api.dyte.io/v2", description="Dyte v2 REST API base URL.")
    dyte_org_id: str | None = Field(None, description="Dyte organization id (HTTP Basic user).")
    dyte_api_key: SecretStr | None = Field(None, description="Dyte API key (HTTP Basic password). Never logged.")
    dyte_api_calls_per_minute: int = Field(
        2000, ge=1, description="Client-side cap on Dyte REST calls per minute (Dyte's limit: 2000/min per IP)."
    )
    dyte_api_timeout_seconds: float = Field(10.0, gt=0, description="Timeout of one Dyte REST call, seconds.")
    realtimekit_account_id: str | None = Field(
        None, description="Cloudflare account id of the RealtimeKit app (PROVIDER=realtimekit)."
    )
    realtimekit_app_id: str | None = Field(None, description="RealtimeKit app id (PROVIDER=realtimekit).")
    realtimekit_api_token: SecretStr | None = Field(
        None,
        description="Cloudflare API token with RealtimeKit permissions, sent as Authorization: Bearer "
        "(PROVIDER=realtimekit). Never logged.",
    )
    realtimekit_api_base_url: str = Field(
        "https://api.cloudflare.com/client/v4",
        description="Cloudflare API base URL; RealtimeKit resources are under "
        "/accounts/REALTIMEKIT_ACCOUNT_ID/realtime/kit/REALTIMEKIT_APP_ID/.",
    )
    realtimekit_webhook_keys_url: str = Field(
        "https://api.realtime.cloudflare.com/.well-known/webhooks.json",
        description="Where RealtimeKit publishes its webhook public key; used for rtk-* deliveries when no "
        "key is configured (cached, re-fetched like DYTE_WEBHOOK_KEYS_URL).",
    )
    realtimekit_api_calls_per_five_minutes: int = Field(
        1200,
        ge=1,
        description="Client-side cap on RealtimeKit REST calls per five minutes (Cloudflare's API limit: "
        "1200 per five minutes per user or token, shared with every other use of the token).",
    )
    realtimekit_api_timeout_seconds: float = Field(
        10.0, gt=0, description="Timeout of one RealtimeKit REST call, seconds."
    )
    public_url: str | None = Field(
        None,
        description="Public base URL of this service, e.g. https://hooks.example.com; the managed webhook "
        "subscription points at PUBLIC_URL + /webhooks/dyte (PROVIDER=dyte) or /webhooks/realtimekit.",
    )
    max_body_bytes: int = Field(1_048_576, ge=1024, description="Largest accepted webhook body, bytes (413 above).")
    body_read_timeout_seconds: float = Field(
        1.0,
        gt=0,
        le=2.5,
        description="Deadline, seconds, for receiving a webhook's whole body once its headers arrived; a slower "
        "client gets 408 (Dyte retries). Well inside Dyte's 3 s answer budget, so a slow sender cannot hold a "
        "request (and its memory) open.",
    )
    admin_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Serve /metrics, /api, /ui and the detailed /readyz only on this port (`receiver serve "
        "--admin-port`); the main port then serves only /webhooks/*, /healthz and a /readyz that says ready or "
        "not. Expose only the main port to the internet. Unset: everything on one port.",
    )
    compact_fallback_max_bytes: int = Field(
        65_536,
        ge=0,
        description="Largest body, bytes, that is JSON-parsed when its signature does not cover the raw bytes "
        "(to try the compact re-serialisation Dyte's own sample signs, and to tell malformed JSON, 400, from a "
        "bad signature, 401). Larger bodies whose raw bytes fail get 401 unparsed. Real deliveries are under "
        "2 KB; parsing costs ~20 ms per MiB.",
    )
    reconcile_delay_seconds: float = Field(
        60.0, ge=0, description="Wait after meeting.ended before reconciling the session with the REST API."
    )
    stale_session_seconds: float = Field(
        7200.0,
        ge=0,
        description="A session with no event for this long and no meeting.ended is reconciled by the sweep.",
    )
    session_idle_end_seconds: float = Field(
        300.0,
        ge=0,
        description="A live session in which nobody is present and no event arrived for this long gets an "
        "inferred end at its last leave (shown as 'ended (inferred)') and is reconciled at once, without waiting "
        "for meeting.ended or STALE_SESSION_SECONDS (Dyte ends a meeting ~60 s after the last leave). 0 disables.",
    )
    reconcile_enabled: bool = Field(
        True,
        description="Reconcile with the provider's REST API (needs DYTE_ORG_ID and DYTE_API_KEY, or with "
        "PROVIDER=realtimekit REALTIMEKIT_ACCOUNT_ID, REALTIMEKIT_APP_ID and REALTIMEKIT_API_TOKEN).",
    )
    worker_max_attempts: int = Field(8, ge=1, description="Processing attempts before an event is dead.")
    worker_lease_seconds: float = Field(60.0, gt=0, description="How long a claimed event stays with a worker.")
    worker_poll_seconds: float = Field(
        0.5,
        gt=0,
        description="Idle worker poll interval on PostgreSQL, seconds: a fallback (retries, expired leases, a lost "
        "listening connection), as the worker wakes on each committed batch of deliveries (LISTEN receiver_events).",
    )
    worker_listen: bool = Field(
        True,
        description="On PostgreSQL, LISTEN for new deliveries on a dedicated connection per worker; false (e.g. "
        "behind a transaction-pooling proxy, where LISTEN does not work) leaves polling alone.",
    )
    worker_sqlite_poll_seconds: float = Field(
        0.05, gt=0, le=60, description="Idle worker poll interval on SQLite (no LISTEN/NOTIFY there), seconds."
    )
    worker_batch_size: int = Field(500, ge=1, description="Events claimed per batch (one lease).")
    worker_events_per_transaction: int = Field(
        250,
        ge=1,
        description="Events applied per database transaction; a failing transaction is redone one event at a time.",
    )
    log_format: str = Field("auto", description="auto (pretty on a terminal, JSON otherwise), json or console.")
    log_level: str = Field("INFO", description="Log level: DEBUG, INFO, WARNING, ERROR.")
    log_flush_seconds: float = Field(
        0.2,
        ge=0,
        le=10,
        description="`serve` and `worker` flush their log lines to stdout at least this often, seconds "
        "(0: after every line). Buffering saves a write per request; a killed process loses at most this much.",
    )

    @field_validator("provider", mode="before")
    @classmethod
    def _check_provider(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip().lower()
            if value not in PROVIDERS:
                raise ValueError(f"PROVIDER must be one of {', '.join(PROVIDERS)}, got {value!r}")
        return value

    # -- data lifecycle (receiver.processing.retention; docs/operations.md) ---------------------------------
    raw_retention_days: int = Field(
        30,
        ge=0,
        description="Days a processed (done/ignored) event's raw body is kept in the inbox; then the worker's "
        "daily purge (or `receiver purge`) empties it and keeps the row for dedupe; on PostgreSQL a month wholly "
        "past the window is dropped whole (dedupe keys are kept 30 days). Dead and failed events are "
        "kept until handled. 0: keep raw bodies forever.",
    )

    @field_validator("log_format")
    @classmethod
    def _check_log_format(cls, value: str) -> str:
        value = value.lower()
        if value not in {"auto", "json", "console"}:
            raise ValueError("LOG_FORMAT must be auto, json or console")
        return value

    @property
    def is_sqlite(self) -> bool:
        """True when DATABASE_URL points at SQLite (the embedded default)."""
        return self.database_url.startswith("sqlite")

    @property
    def provider_label(self) -> str:
        """The chosen provider's name for messages: ``Dyte`` or ``RealtimeKit``."""
        return PROVIDER_LABELS[self.provider]

    def missing_api_settings(self) -> list[str]:
        """Environment variables the chosen provider's REST client needs and that are unset (fixed order).

        Dyte: DYTE_ORG_ID, DYTE_API_KEY. RealtimeKit: REALTIMEKIT_ACCOUNT_ID,
        REALTIMEKIT_APP_ID, REALTIMEKIT_API_TOKEN. Empty when the client can be built.
        """
        missing = []
        for name in self.api_setting_names():
            value = getattr(self, name.lower())
            text = value.get_secret_value() if isinstance(value, SecretStr) else value
            if not (text or "").strip():
                missing.append(name)
        return missing

    def api_setting_names(self) -> list[str]:
        """The environment variables holding the chosen provider's REST credentials (for messages)."""
        if self.provider == "realtimekit":
            return ["REALTIMEKIT_ACCOUNT_ID", "REALTIMEKIT_APP_ID", "REALTIMEKIT_API_TOKEN"]
        return ["DYTE_ORG_ID", "DYTE_API_KEY"]

    @property
    def api_credentials_set(self) -> bool:
        """True when the chosen provider's REST credentials are all configured (see :meth:`missing_api_settings`)."""
        return not self.missing_api_settings()

    def require_api_credentials(self, purpose: str) -> None:
        """Raise unless the chosen provider's REST credentials are complete.

        Args:
            purpose: what needs them, e.g. ``"receiver backfill"``; starts the message.

        Raises:
            ConfigurationError: one line naming the unset variables and the provider, e.g.
                ``receiver backfill needs the RealtimeKit REST API (PROVIDER=realtimekit): set
                REALTIMEKIT_APP_ID, REALTIMEKIT_API_TOKEN``.
        """
        missing = self.missing_api_settings()
        if missing:
            raise ConfigurationError(
                f"{purpose} needs the {self.provider_label} REST API (PROVIDER={self.provider}): "
                f"set {', '.join(missing)}"
            )

    @property
    def api_timeout_seconds(self) -> float:
        """Timeout of one REST call to the chosen provider, seconds."""
        if self.provider == "realtimekit":
            return self.realtimekit_api_timeout_seconds
        return self.dyte_api_timeout_seconds

    def webhook_public_key_pems(self) -> list[str]:
        """PEM blocks from DYTE_WEBHOOK_PUBLIC_KEY (text, or a file path). Empty when unset.

        Raises:
            ValueError: the value is neither PEM text nor a readable file.
        """
        raw = (self.dyte_webhook_public_key or "").strip()
        if not raw:
            return []
        if "-----BEGIN" not in raw:
            path = Path(raw).expanduser()
            if not path.is_file():
                raise ValueError(f"DYTE_WEBHOOK_PUBLIC_KEY is neither PEM text nor a file: {raw[:80]}")
            raw = path.read_text()
        raw = raw.replace("\\n", "\n")
        blocks: list[str] = []
        current: list[str] = []
        for line in raw.splitlines():
            if line.startswith("-----BEGIN"):
                current = [line]
            elif line.startswith("-----END"):
                current.append(line)
                blocks.append("\n".join(current) + "\n")
                current = []
            elif current:
                current.append(line)
        return blocks

    # -- webhook subscription (receiver.subscriptions.ensure) ------------------------------------------
    subscription_name: str = Field(
        "receiver",
        min_length=1,
        description="Name of the webhook this service creates and manages at the provider; webhooks with this "
        "name are considered ours (`receiver subscribe --prune` only ever deletes those).",
    )
    subscription_events: str = Field(
        ",".join(ALL_EVENTS),
        description="Comma-separated events the managed webhook subscribes to (`all` = all nine).",
    )
    subscription_ensure_on_start: bool = Field(
        True,
        description="`receiver serve` ensures the webhook subscription at start-up, in the background, "
        "when PUBLIC_URL and the chosen provider's credentials are set.",
    )
    subscription_enforce_webhook_id: bool = Field(
        False,
        description="Answer 403 to deliveries whose dyte-webhook-id / rtk-webhook-id is not a subscription "
        "managed by this service (table managed_subscriptions). Keep it off while moving from Dyte to "
        "RealtimeKit (README).",
    )
    subscription_retry_base_seconds: float = Field(
        2.0, gt=0, description="First back-off delay, seconds, when ensuring the subscription at start-up fails."
    )
    subscription_retry_max_seconds: float = Field(
        300.0, gt=0, description="Longest back-off delay, seconds, between start-up subscription attempts."
    )

    @field_validator("subscription_events")
    @classmethod
    def _check_subscription_events(cls, value: str) -> str:
        names = [part.strip() for part in value.split(",") if part.strip()]
        if [n.lower() for n in names] == ["all"]:
            return ",".join(ALL_EVENTS)
        unknown = [n for n in names if n not in ALL_EVENTS]
        if unknown:
            raise ValueError(
                f"SUBSCRIPTION_EVENTS: unknown event(s) {', '.join(unknown)}; known: {', '.join(ALL_EVENTS)}"
            )
        if not names:
            raise ValueError("SUBSCRIPTION_EVENTS must name at least one event")
        return ",".join(dict.fromkeys(names))

    # -- reports API and pages (receiver.web.api, receiver.web.pages) ------------------------------------
    api_tokens: SecretStr | None = Field(
        None,
        description="Comma-separated tokens for the reports API (/api, Authorization: Bearer) and the pages "
        "(/ui, sign in at /ui/login). Each entry is name:role:token (role analyst: read; operator: also retry, "
        "replay, refresh) or a plain token (role analyst, named token-N by its position). Unset: /api and /ui "
        "answer 503 not configured (GET /api/openapi.json is always served). Never logged.",
    )
    ui_session_seconds: float = Field(
        28800.0,
        ge=60,
        le=30 * 86400,
        description="Lifetime of a page sign-in (/ui/login), seconds; the session then expires server-side and "
        "in the cookie. Signing out, removing or changing the token, or an operator's revoke end it sooner.",
    )
    ui_session_secret: SecretStr | None = Field(
        None,
        description="Key that signs the page-session cookie (itsdangerous). Default: derived from API_TOKENS, so "
        "replicas sharing the tokens share sessions and changing the tokens signs everyone out. Never logged.",
    )
    ui_cookie_secure: bool = Field(
        False,
        description="Always mark the page-session cookie Secure (HTTPS only). Otherwise it is Secure when the "
        "request came over HTTPS, directly or through a TRUSTED_PROXIES proxy saying so in X-Forwarded-Proto.",
    )
    trusted_proxies: str = Field(
        "",
        description="Comma-separated IP addresses or networks (CIDR) of reverse proxies whose "
        "X-Forwarded-Proto header is believed (HTTPS behind a TLS-terminating proxy). Empty: none.",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _check_trusted_proxies(cls, value: str) -> str:
        for part in (p.strip() for p in value.split(",")):
            if part:
                try:
                    ipaddress.ip_network(part, strict=False)
                except ValueError:
                    raise ValueError(f"TRUSTED_PROXIES: {part!r} is not an IP address or network") from None
        return value

    def trusted_proxy_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """TRUSTED_PROXIES parsed as networks (a bare address is a /32 or /128)."""
        return [ipaddress.ip_network(p.strip(), strict=False) for p in self.trusted_proxies.split(",") if p.strip()]

    # -- outbound webhook (receiver.processing.outbound) ------------------------------------------------
    outbound_webhook_url: str = Field(
        "",
        description="Where to POST a signed webhook (Standard Webhooks: webhook-id, webhook-timestamp, "
        "webhook-signature) with a session's attendance after each reconciliation that changed it. Empty: off.",
    )
    outbound_webhook_secret: SecretStr | None = Field(
        None,
        description="Signing secret of the outbound webhook, whsec_<base64> (at least 24 bytes; e.g. "
        "`whsec_$(openssl rand -base64 32)`). Required when OUTBOUND_WEBHOOK_URL is set. Never logged.",
    )
    outbound_webhook_max_attempts: int = Field(
        8,
        ge=1,
        le=50,
        description="Attempts of one outbound delivery before it is dead (back-off 5 s doubling to 1 h).",
    )
    outbound_webhook_timeout_seconds: float = Field(
        10.0, gt=0, le=120, description="Timeout of one outbound POST, seconds (connect, read and write)."
    )

    @field_validator("outbound_webhook_url")
    @classmethod
    def _check_outbound_url(cls, value: str) -> str:
        value = value.strip()
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("OUTBOUND_WEBHOOK_URL must be an http:// or https:// URL (or empty: off)")
        return value

    @field_validator("outbound_webhook_secret")
    @classmethod
    def _check_outbound_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        raw = value.get_secret_value().strip()
        if not raw.startswith("whsec_"):
            raise ValueError("OUTBOUND_WEBHOOK_SECRET must start with whsec_ (whsec_<base64>)")
        try:
            key = base64.b64decode(raw.removeprefix("whsec_"), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("OUTBOUND_WEBHOOK_SECRET: the part after whsec_ is not base64") from None
        if len(key) < 24:
            raise ValueError("OUTBOUND_WEBHOOK_SECRET: the key is shorter than 24 bytes")
        return SecretStr(raw)

    @model_validator(mode="after")
    def _check_outbound_pair(self) -> Settings:
        if self.outbound_webhook_url and self.outbound_webhook_secret is None:
            raise ValueError("OUTBOUND_WEBHOOK_URL is set but OUTBOUND_WEBHOOK_SECRET is not (whsec_<base64>)")
        return self

    @property
    def outbound_enabled(self) -> bool:
        """True when OUTBOUND_WEBHOOK_URL is set (the secret is then required by validation)."""
        return bool(self.outbound_webhook_url)


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment; keyword overrides win (used by the CLI and tests)."""
    return Settings(**overrides)  # type: ignore[arg-type]


def settings_reference_markdown() -> str:
    """The README's configuration table: one row per setting (variable, default, meaning)."""
    lines = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        default = field.default
        shown = "" if default is None else f"`{default}`"
        description = (field.description or "").replace("|", "\\|")
        lines.append(f"| `{name.upper()}` | {shown} | {description} |")
    return "\n".join(lines)


def update_readme_table(readme: Path) -> bool:
    """Rewrite the table between the settings-table markers of ``readme``; returns True when it changed."""
    text = readme.read_text(encoding="utf-8")
    start, end = "<!-- settings-table:start -->", "<!-- settings-table:end -->"
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    new = f"{head}{start}\n{settings_reference_markdown()}\n{end}{tail}"
    if new != text:
        readme.write_text(new, encoding="utf-8")
        return True
    return False
