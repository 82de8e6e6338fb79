"""Notion API stand-in, version ``2025-09-03`` (what ``notion-client`` 3.x speaks).

Implements what the consultation backup uses, with Notion's documented shapes, limits and
errors:

- ``GET /v1/databases/{id}`` (with its ``data_sources``), ``GET /v1/data_sources/{id}``;
- ``POST /v1/data_sources/{id}/query``: ``filter`` (``and``/``or``, timestamp filters on
  ``created_time``/``last_edited_time``, property filters for title, rich_text, phone_number,
  number, checkbox, select, date, relation, formula), ``sorts``, ``start_cursor``,
  ``page_size`` <= 100, ``in_trash``; at most 10,000 results per query, after which
  ``has_more`` is false and ``request_status`` is ``incomplete`` / ``query_result_limit_reached``;
- ``POST /v1/pages``, ``GET /v1/pages/{id}``, ``PATCH /v1/pages/{id}`` (properties, ``in_trash``);
- property ids that survive a rename: ``PATCH /v1/data_sources/{id}`` renames, retypes, removes
  or adds properties, ``POST /v1/data_sources`` adds a data source to a database; filters,
  sorts and writes take a property's id in place of its name;
- page objects carry every property and at most 25 references per property (relations with
  ``has_more``; formulas computed over the first 25 relations, as Notion's are);
  ``GET /v1/pages/{id}/properties/{property_id}`` pages through the full value;
- rich text kept as the separate objects written (each <= 2,000 characters, <= 100 per
  property; longer ones are refused with ``validation_error``);
- Notion-hosted files: ``POST /v1/file_uploads`` + ``/send`` (single part), then
  ``type: file`` values whose ``url`` is signed and expires after an hour (``expiry_time``);
  the download answers 403 once expired or altered;
- ``created_time`` / ``last_edited_time`` rounded down to the minute;
- an average of 3 requests/s per integration token (token bucket), answered with
  ``429 rate_limited`` and ``Retry-After`` in whole seconds.

State is in memory. ``create_app(seed, scale)`` seeds two databases (customers and
consultations) with deterministic Korean demo data whose images live in the Google Drive
stand-in (same seed -> same file ids), including a few deliberately bad pages.
"""

from resources.environment import NOTION_CONSULTATIONS_DB_LOCAL, NOTION_CUSTOMERS_DB_LOCAL
from standins.notion.app import build_app, create_app
from standins.notion.dataset import (
    Dataset,
    DriveFileSpec,
    SeedPage,
    consultation_dataset,
    drive_view_url,
    seed_workspace,
)
from standins.notion.errors import NotionError, error_body
from standins.notion.shapes import (
    floor_minute,
    iso,
    normalize_id,
    parse_when,
    plain,
    prop_id,
    rich_text,
    to_read_shape,
)
from standins.notion.state import (
    API_VERSION,
    CONSULTATION_SCHEMA,
    CONSULTATIONS_DS_LOCAL,
    CUSTOMER_SCHEMA,
    CUSTOMERS_DS_LOCAL,
    DEFAULT_BURST,
    DEFAULT_RATE_PER_S,
    DRIVE_ROOT_FOLDER_LOCAL,
    MAX_PAGE_SIZE,
    QUERY_RESULT_LIMIT,
    DataSource,
    NotionWorkspace,
    TokenBucket,
)

__all__ = [
    "API_VERSION",
    "CONSULTATION_SCHEMA",
    "CONSULTATIONS_DS_LOCAL",
    "CUSTOMER_SCHEMA",
    "CUSTOMERS_DS_LOCAL",
    "DEFAULT_BURST",
    "DEFAULT_RATE_PER_S",
    "DRIVE_ROOT_FOLDER_LOCAL",
    "MAX_PAGE_SIZE",
    "NOTION_CONSULTATIONS_DB_LOCAL",
    "NOTION_CUSTOMERS_DB_LOCAL",
    "QUERY_RESULT_LIMIT",
    "DataSource",
    "Dataset",
    "DriveFileSpec",
    "NotionError",
    "NotionWorkspace",
    "SeedPage",
    "TokenBucket",
    "build_app",
    "consultation_dataset",
    "create_app",
    "drive_view_url",
    "error_body",
    "floor_minute",
    "iso",
    "normalize_id",
    "parse_when",
    "plain",
    "prop_id",
    "rich_text",
    "seed_workspace",
    "to_read_shape",
]
