"""What a sandbox serves: its world, signing key, provider dialect and credentials, faults and call log."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import rsa

from receiver.sandbox.dialects import SandboxDialect, dialect_for
from receiver.sandbox.world import World

__all__ = ["RestFaults", "SandboxState"]


@dataclass
class RestFaults:
    """Random REST faults, drawn from ``random.Random(seed)`` once per REST request.

    Rates are probabilities in ``[0, 1]`` (checked in the order timeout,
    rate limit, error): ``timeout_rate`` sleeps ``timeout_seconds`` (seconds;
    longer than the client's timeout) before answering normally;
    ``rate_limit_rate`` answers 429 with ``retry-after: retry_after_seconds``;
    ``error_rate`` answers 500.
    """

    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    timeout_rate: float = 0.0
    timeout_seconds: float = 30
    retry_after_seconds: int = 1
    seed: int = 0


@dataclass
class SandboxState:
    """What the fake API serves: the world, the signing key, credentials, faults, a call log.

    ``provider`` picks the dialect (:mod:`receiver.sandbox.dialects`):
    ``dyte`` checks HTTP Basic ``org_id:api_key``; ``realtimekit`` serves the
    app ``account_id``/``app_id`` and checks ``Bearer api_token``.
    ``calls`` receives ``(method, path, status)`` per request (504 marks a
    timeout fault, logged when the pause begins).

    Raises:
        ValueError: unknown ``provider``.
    """

    world: World
    private_key: rsa.RSAPrivateKey
    org_id: str = "sandbox-org"
    api_key: str = "sandbox-key"
    rest_faults: RestFaults = field(default_factory=RestFaults)
    calls: list[tuple[str, str, int]] = field(default_factory=list)
    provider: str = "dyte"
    account_id: str = "sandbox-account"
    app_id: str = "sandbox-app"
    api_token: str = "sandbox-token"

    def __post_init__(self) -> None:
        self._fault_rng = random.Random(self.rest_faults.seed)
        self.dialect: SandboxDialect = dialect_for(self.provider)

    def receiver_environment(self, server_url: str) -> dict[str, str]:
        """The settings that point a receiver at this sandbox served at ``server_url``, as environment variables.

        PROVIDER, the provider's REST base URL and credentials, and both key
        document URLs (the sandbox serves one document for both header
        families, so a receiver never fetches a real platform's key).
        ``receiver sandbox`` prints them as ``export`` lines; the demo builds
        its settings from them.
        """
        keys_url = f"{server_url}/.well-known/webhooks.json"
        env = {"PROVIDER": self.provider}
        if self.provider == "realtimekit":
            env |= {
                "REALTIMEKIT_API_BASE_URL": self.dialect.base_url(server_url, self),
                "REALTIMEKIT_ACCOUNT_ID": self.account_id,
                "REALTIMEKIT_APP_ID": self.app_id,
                "REALTIMEKIT_API_TOKEN": self.api_token,
            }
        else:
            env |= {
                "DYTE_API_BASE_URL": self.dialect.base_url(server_url, self),
                "DYTE_ORG_ID": self.org_id,
                "DYTE_API_KEY": self.api_key,
            }
        env |= {"DYTE_WEBHOOK_KEYS_URL": keys_url, "REALTIMEKIT_WEBHOOK_KEYS_URL": keys_url}
        return env

    def draw_fault(self) -> str | None:
        """The fault for the next request: ``"timeout"``, ``"rate_limit"``, ``"error"`` or None."""
        faults = self.rest_faults
        if not (faults.timeout_rate or faults.rate_limit_rate or faults.error_rate):
            return None
        r = self._fault_rng.random()
        if r < faults.timeout_rate:
            return "timeout"
        r -= faults.timeout_rate
        if r < faults.rate_limit_rate:
            return "rate_limit"
        r -= faults.rate_limit_rate
        if r < faults.error_rate:
            return "error"
        return None
