"""Issue 10 §3: the edits sensor asks for ONE run per tick for every edited page whatever its
상담일자, ticks every 15 s, and its runs retry."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from consultation_backup.customers import sync_customers
from consultation_backup.definitions import defs
from tests.support.consultation import sensor_tick

pytestmark = pytest.mark.integration


def _edit(env, page_id: str, text: str) -> None:
    env.raw_notion().pages.update(
        page_id=page_id, properties={"결과": {"rich_text": [{"text": {"content": text}}]}}
    )


def _scattered_pages(env, n_days: int) -> list[dict]:
    """One consultation page on each of ``n_days`` different 상담일자."""
    by_day: dict[str, dict] = {}
    for page in env.ds("consultations").pages.values():
        by_day.setdefault(page["properties"]["상담일자"]["date"]["start"][:10], page)
    assert len(by_day) >= n_days, f"the tiny workspace has only {len(by_day)} days"
    return [by_day[d] for d in sorted(by_day)[:n_days]]


def test_a_scattered_edit_is_one_run_request(backup_env, dagster_instance):
    env = backup_env
    _, cursor = sensor_tick(env, dagster_instance)
    pages = _scattered_pages(env, 8)
    for i, page in enumerate(pages):
        _edit(env, page["id"], f"흩어진 수정 {i}")
    result, _ = sensor_tick(env, dagster_instance, cursor)
    requests = result if isinstance(result, list) else [result]
    assert len(requests) == 1, [r.partition_key for r in requests]
    assert requests[0].job_name == "consultation_edits_job"
    assert requests[0].partition_key is None


def test_the_edits_run_carries_the_trashed_pages(backup_env, dagster_instance):
    env = backup_env
    _, cursor = sensor_tick(env, dagster_instance)
    edited, trashed = _scattered_pages(env, 2)
    _edit(env, edited["id"], "수정")
    env.raw_notion().pages.update(page_id=trashed["id"], in_trash=True)
    request, _ = sensor_tick(env, dagster_instance, cursor)
    config = request.run_config["ops"]["apply_notion_edits"]["config"]
    assert config["trashed_page_ids"] == [trashed["id"]]
    assert config["consultations_since"], "the edited page is read by edit time"


def test_the_same_edits_seen_again_have_the_same_run_key(backup_env, dagster_instance):
    env = backup_env
    _, cursor = sensor_tick(env, dagster_instance)
    page = _scattered_pages(env, 1)[0]
    _edit(env, page["id"], "한 번")
    first, cursor2 = sensor_tick(env, dagster_instance, cursor)
    again, _ = sensor_tick(env, dagster_instance, cursor2)
    assert again.run_key == first.run_key
    _edit(env, page["id"], "두 번")
    third, _ = sensor_tick(env, dagster_instance, cursor2)
    assert third.run_key != first.run_key, "a second edit in the same minute still runs"


def test_a_quiet_tick_costs_one_query_per_database(backup_env, dagster_instance):
    env = backup_env
    _, cursor = sensor_tick(env, dagster_instance)
    env.notion.data_source_id(env.settings.customers_database_id)
    env.notion.data_source_id(env.settings.consultations_database_id)
    _, cursor = sensor_tick(env, dagster_instance, cursor)  # trash checked on this tick
    before = env.workspace.stats["queries"]
    skip, _ = sensor_tick(env, dagster_instance, cursor)
    assert isinstance(skip, dg.SkipReason)
    assert env.workspace.stats["queries"] - before == 2


def test_the_sensor_ticks_every_15_seconds_and_its_runs_retry():
    sensor = defs.get_sensor_def("notion_edits_sensor")
    assert sensor.minimum_interval_seconds == 15
    job = defs.resolve_job_def("consultation_edits_job")
    assert not job.partitions_def
    (node,) = job.graph.node_defs
    assert node.retry_policy is not None and node.retry_policy.max_retries >= 2


def test_customer_edits_alone_ask_for_the_customer_sync_only(backup_env, dagster_instance):
    env = backup_env
    sync_customers(env.notion, env.db, env.settings.customers_database_id)
    _, cursor = sensor_tick(env, dagster_instance)
    customer = env.page_by_title("customers", "00003")
    env.raw_notion().pages.update(
        page_id=customer["id"],
        properties={"특이사항": {"rich_text": [{"text": {"content": "고혈압"}}]}},
    )
    request, cursor2 = sensor_tick(env, dagster_instance, cursor)
    config = request.run_config["ops"]["apply_notion_edits"]["config"]
    assert config["customers"] is True and config["consultations_since"] == ""
    assert json.loads(cursor2)["customers"] >= customer["last_edited_time"]


def test_a_quiet_tick_costs_two_requests_with_fresh_resources(backup_env, dagster_instance):
    """The daemon builds the sensor's resources anew every tick: the data source ids travel in
    the cursor, so a quiet tick is one query per database and nothing else."""
    from consultation_backup.sensors import notion_edits_sensor
    from tests.support.consultation import make_notion

    env = backup_env

    def tick(cursor):
        ctx = dg.build_sensor_context(
            instance=dagster_instance,
            cursor=cursor,
            resources={
                "notion": make_notion(env.notion_url),
                "consultation_settings": env.settings,
            },
        )
        return notion_edits_sensor(ctx), ctx.cursor

    _, cursor = tick(None)
    _, cursor = tick(cursor)  # learns the data sources, checks the trash
    before = env.workspace.stats["requests"]
    skip, _ = tick(cursor)
    assert isinstance(skip, dg.SkipReason)
    assert env.workspace.stats["requests"] - before == 2
