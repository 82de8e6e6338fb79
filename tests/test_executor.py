"""The platform executor: chosen by PLATFORM_PROFILE at run start, same config as Dagster's
default executor, rate-limited pools on their own Celery queues, blind retries opted out."""

import dagster as dg
import pytest

from resources.executor import current_profile, platform_executor, queue_for

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("pool", "tags", "queue"),
    [
        ("notion", {}, "notion"),
        ("solapi", {}, "solapi"),
        ("gfx_tables", {}, "dagster"),
        (None, {}, "dagster"),
        ("notion", {"dagster-celery/queue": "special"}, "special"),
    ],
)
def test_steps_of_rate_limited_pools_go_to_their_queue(pool, tags, queue):
    assert queue_for(pool, tags) == queue


def test_the_notion_and_solapi_steps_carry_those_pools():
    from consultation_backup.definitions import defs as consultation
    from messaging.definitions import defs as messaging

    pools = {
        queue_for(a.op.pool, a.op.tags)
        for d in (consultation, messaging)
        for a in d.assets or ()
        if isinstance(a, dg.AssetsDefinition) and a.is_executable
    }
    assert {"notion", "solapi"} <= pools


def test_profile_is_read_from_the_environment_and_checked():
    assert current_profile({}) == "single"
    assert current_profile({"PLATFORM_PROFILE": "Distributed "}) == "distributed"
    with pytest.raises(Exception, match="PLATFORM_PROFILE"):
        current_profile({"PLATFORM_PROFILE": "kubernetes"})


def test_config_is_the_default_executors():
    fields = platform_executor.config_schema.config_type.fields
    assert set(fields) == {"multiprocess", "in_process"}


def test_jobs_that_must_not_repeat_blindly_opt_out_of_run_retries():
    from consultation_backup.definitions import defs as consultation
    from gfx_sync.definitions import defs as gfx
    from messaging.definitions import defs as messaging

    names = [
        (consultation, ["consultation_restore_job", "consultation_backup_migrations"]),
        (gfx, ["gfx_restore_job", "gfx_sync_migrations"]),
        (messaging, ["messaging_migrations"]),
    ]
    for d, jobs in names:
        for name in jobs:
            assert d.resolve_job_def(name).tags.get("dagster/max_retries") == "0", name
