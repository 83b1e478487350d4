"""Settings: the provider choice, its credentials and the one-line error a command gives when they are missing."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from receiver.cli.errors import ExitCode
from receiver.cli.main import cli
from receiver.errors import ConfigurationError
from receiver.settings import Settings

RTK = {
    "realtimekit_account_id": "acc-1",
    "realtimekit_app_id": "app-1",
    "realtimekit_api_token": "cf-token-PLANTED",
}


def test_provider_defaults_to_dyte_and_reads_the_environment(monkeypatch):
    """PROVIDER is dyte unless set; the value is case-insensitive; RTK defaults point at Cloudflare."""
    assert Settings().provider == "dyte"
    monkeypatch.setenv("PROVIDER", " RealtimeKit ")
    monkeypatch.setenv("REALTIMEKIT_API_TOKEN", "cf-token-PLANTED")
    settings = Settings()
    assert settings.provider == "realtimekit" and settings.provider_label == "RealtimeKit"
    assert settings.realtimekit_api_base_url == "https://api.cloudflare.com/client/v4"
    assert settings.realtimekit_webhook_keys_url == "https://api.realtime.cloudflare.com/.well-known/webhooks.json"
    assert "cf-token-PLANTED" not in repr(settings)


def test_unknown_provider_is_refused_with_the_choices():
    with pytest.raises(ValidationError, match="PROVIDER must be one of dyte, realtimekit"):
        Settings(provider="zoom")


def test_missing_credentials_are_named_for_the_chosen_provider():
    """Dyte needs org id and key; RealtimeKit needs account id, app id and token, and never the Dyte pair."""
    assert Settings().missing_api_settings() == ["DYTE_ORG_ID", "DYTE_API_KEY"]
    rtk = Settings(provider="realtimekit", dyte_org_id="o", dyte_api_key="k")
    assert rtk.missing_api_settings() == ["REALTIMEKIT_ACCOUNT_ID", "REALTIMEKIT_APP_ID", "REALTIMEKIT_API_TOKEN"]
    assert not rtk.api_credentials_set
    complete = Settings(provider="realtimekit", **RTK)
    assert complete.api_credentials_set and complete.missing_api_settings() == []
    assert Settings(provider="realtimekit", **{**RTK, "realtimekit_app_id": "  "}).missing_api_settings() == [
        "REALTIMEKIT_APP_ID"
    ]


def test_require_api_credentials_raises_one_configuration_error_line():
    settings = Settings(provider="realtimekit", realtimekit_account_id="acc-1")
    with pytest.raises(ConfigurationError) as caught:
        settings.require_api_credentials("receiver backfill")
    message = str(caught.value)
    assert message == (
        "receiver backfill needs the RealtimeKit REST API (PROVIDER=realtimekit): "
        "set REALTIMEKIT_APP_ID, REALTIMEKIT_API_TOKEN"
    )
    Settings(provider="realtimekit", **RTK).require_api_credentials("anything")  # complete: no error


def test_backfill_without_credentials_exits_3_with_one_line_naming_them(monkeypatch):
    """The CLI shows the configuration error as one line on stderr, no traceback."""
    monkeypatch.setenv("PROVIDER", "realtimekit")
    monkeypatch.setenv("REALTIMEKIT_ACCOUNT_ID", "acc-1")
    result = CliRunner().invoke(cli, ["backfill", "--since", "2026-01-01"])
    assert result.exit_code == ExitCode.CONFIG
    lines = result.output.strip().splitlines()
    assert lines == [
        "error: receiver backfill needs the RealtimeKit REST API (PROVIDER=realtimekit): "
        "set REALTIMEKIT_APP_ID, REALTIMEKIT_API_TOKEN"
    ]
    monkeypatch.setenv("PROVIDER", "dyte")
    dyte = CliRunner().invoke(cli, ["backfill", "--since", "2026-01-01"])
    assert dyte.exit_code == ExitCode.CONFIG and "set DYTE_ORG_ID, DYTE_API_KEY" in dyte.output


def test_the_realtimekit_token_is_registered_for_log_redaction(monkeypatch):
    """The CLI registers REALTIMEKIT_API_TOKEN like DYTE_API_KEY: any log value holding it is masked."""
    from receiver.redaction import redact_value

    token = "cf-token-PLANTED-55aa17"
    monkeypatch.setenv("PROVIDER", "realtimekit")
    monkeypatch.setenv("REALTIMEKIT_API_TOKEN", token)
    result = CliRunner().invoke(cli, ["backfill", "--since", "2026-01-01"])
    assert result.exit_code == ExitCode.CONFIG and token not in result.output
    masked = redact_value({"error": f"upstream said Bearer {token}", "url": "https://x"})
    assert token not in str(masked) and masked["url"] == "https://x"
