"""A reconstructable handle on the workflow job (Dagster re-execution needs one)."""

from messaging.definitions import defs


def messaging_run_workflow_job():
    return defs.resolve_job_def("messaging_run_workflow")
