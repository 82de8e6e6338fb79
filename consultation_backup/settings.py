"""The domain's own configuration resource: which Notion databases to back up."""

import dagster as dg
from pydantic import Field


class ConsultationSettings(dg.ConfigurableResource):
    """Notion database ids of the consultation system (from the environment contract)."""

    customers_database_id: str = Field(description="NOTION_CUSTOMERS_DATABASE_ID")
    consultations_database_id: str = Field(description="NOTION_CONSULTATIONS_DATABASE_ID")


consultation_settings = ConsultationSettings(
    customers_database_id=dg.EnvVar("NOTION_CUSTOMERS_DATABASE_ID"),
    consultations_database_id=dg.EnvVar("NOTION_CONSULTATIONS_DATABASE_ID"),
)
