"""render_queue is Supabase-absolute: the job fields an operator edits in Supabase
reach the renderer even when the renderer reported progress later, and a renderer's edit of a job
field is put back; only the result columns come back."""

import pytest

from gfx_sync.specs import spec_for
from gfx_sync.two_way import two_way_sync

pytestmark = pytest.mark.integration

RQ = spec_for("render_queue")
JOB_FIELDS = "job_type, template_name, params::text, priority, requested_by"


def test_an_operator_edit_reaches_the_renderer_even_if_the_renderer_reported_later(
    clean, supabase_db, gfx_source_db
):
    job = supabase_db.fetch_value(
        "INSERT INTO render_queue (job_type, template_name, priority, requested_by)"
        " VALUES ('lower_third', 'lt_v1', 5, '김PD') RETURNING id"
    )
    two_way_sync(gfx_source_db, supabase_db, RQ)
    supabase_db.execute(
        "UPDATE render_queue SET priority = 1, template_name = 'lt_v2' WHERE id = %s", (job,)
    )
    gfx_source_db.execute(
        "UPDATE render_queue SET status = 'rendering', progress = 40 WHERE id = %s", (job,)
    )
    two_way_sync(gfx_source_db, supabase_db, RQ)
    ext = gfx_source_db.fetch_one(
        f"SELECT {JOB_FIELDS}, status, progress FROM render_queue WHERE id = %s", (job,)
    )
    sb = supabase_db.fetch_one(
        f"SELECT {JOB_FIELDS}, status, progress FROM render_queue WHERE id = %s", (job,)
    )
    assert (ext["priority"], ext["template_name"]) == (
        1,
        "lt_v2",
    )  # the operator's edit reached the renderer
    assert (sb["status"], sb["progress"]) == ("rendering", 40)  # the renderer's progress came back
    assert ext == sb
    again = two_way_sync(gfx_source_db, supabase_db, RQ)
    assert again.written == 0  # converged, no echo


def test_a_renderer_edit_of_a_job_field_is_put_back(clean, supabase_db, gfx_source_db):
    job = supabase_db.fetch_value(
        "INSERT INTO render_queue (job_type, template_name) VALUES ('leaderboard', 'lb_v2')"
        " RETURNING id"
    )
    two_way_sync(gfx_source_db, supabase_db, RQ)
    gfx_source_db.execute(
        "UPDATE render_queue SET status = 'done', progress = 100, template_name ="
        " 'renderer-changed'"
        " WHERE id = %s",
        (job,),
    )
    two_way_sync(gfx_source_db, supabase_db, RQ)
    assert (
        gfx_source_db.fetch_value("SELECT template_name FROM render_queue WHERE id = %s", (job,))
        == "lb_v2"
    )
    assert (
        supabase_db.fetch_value("SELECT status FROM render_queue WHERE id = %s", (job,)) == "done"
    )
