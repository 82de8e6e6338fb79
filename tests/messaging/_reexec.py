"""A reconstructable handle on the workflow job (Dagster re-execution needs one)."""

import dagster as dg

from messaging.definitions import defs
from messaging.jobs import run_workflow_job


def messaging_run_workflow_job() -> dg.JobDefinition:
    return defs.resolve_job_def(run_workflow_job.name)
