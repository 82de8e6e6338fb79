"""MessagingSettings: the send mode comes from MESSAGING_SEND_MODE, read when a run uses it."""

from __future__ import annotations

import pytest

from messaging.models import WorkflowConfigError
from messaging.settings import MessagingSettings, parse_send_mode

pytestmark = pytest.mark.unit


def test_send_mode_defaults_to_dry_run_when_unset(monkeypatch):
    monkeypatch.delenv("MESSAGING_SEND_MODE", raising=False)
    assert MessagingSettings().send_mode() == "dry_run", "unset must mean dry_run"


@pytest.mark.parametrize(("raw", "mode"), [("live", "live"), (" LIVE ", "live"), ("", "dry_run")])
def test_send_mode_reads_the_variable_at_run_time(monkeypatch, raw, mode):
    settings = MessagingSettings()  # built before the variable is set, as at definitions load
    monkeypatch.setenv("MESSAGING_SEND_MODE", raw)
    assert settings.send_mode() == mode, f"MESSAGING_SEND_MODE={raw!r} should mean {mode}"


def test_an_invalid_send_mode_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("MESSAGING_SEND_MODE", "sometimes")
    with pytest.raises(WorkflowConfigError, match="MESSAGING_SEND_MODE must be one of"):
        MessagingSettings().send_mode()


def test_the_variable_name_is_configurable(monkeypatch):
    monkeypatch.setenv("OTHER_SEND_MODE", "live")
    assert MessagingSettings(send_mode_env="OTHER_SEND_MODE").send_mode() == "live"
    with pytest.raises(WorkflowConfigError, match="OTHER_SEND_MODE"):
        parse_send_mode("loud", "OTHER_SEND_MODE")
