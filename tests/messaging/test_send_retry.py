"""A run that fails mid-send is retried by the asset's Dagster retry policy and resumes the same
execution from its pending rows."""

from __future__ import annotations

import pytest

from messaging.assets import SEND_RETRY_POLICY, messaging_workflow_run

pytestmark = pytest.mark.unit


def test_workflow_run_has_a_retry_policy():
    policy = messaging_workflow_run.op.retry_policy
    assert policy is SEND_RETRY_POLICY and policy.max_retries >= 1
