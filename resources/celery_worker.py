"""The distributed profile's Celery app: ``celery -A resources.celery_worker worker``.

It is dagster-celery's app (the same task names and routes the executor submits to) built with
the platform's broker and settings (``resources.executor``), so a worker acknowledges a step
only after running it and hands it back when it dies. ``make workers N=2`` starts workers with
the local defaults applied.
"""

from __future__ import annotations

from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_execute_job_task, create_resume_job_task, create_task
from kombu import Queue  # type: ignore[attr-defined]

from resources.executor import (
    CELERY_BACKEND,
    CELERY_CONFIG_SOURCE,
    CELERY_INCLUDE,
    CELERY_QUEUES,
    broker_url,
)

app = make_app(  # type: ignore[no-untyped-call]
    {
        "broker": broker_url(),
        "backend": CELERY_BACKEND,
        "include": CELERY_INCLUDE,
        "config_source": dict(CELERY_CONFIG_SOURCE),
    }
)
# Every queue a step can be routed to (the `dagster-celery/queue` tag), with priorities.
app.conf.task_queues = [
    Queue(  # type: ignore[no-untyped-call]
        name, routing_key=f"{name}.#", queue_arguments={"x-max-priority": 10}
    )
    for name in CELERY_QUEUES
]
execute_plan = create_task(app)  # type: ignore[no-untyped-call]
execute_job = create_execute_job_task(app)
resume_job = create_resume_job_task(app)
