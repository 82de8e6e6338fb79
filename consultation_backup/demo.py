"""`python -m consultation_backup.demo --scale S`: prepare the local demo of this domain.

The Notion and Google Drive stand-ins seed themselves (same seed -> same customers,
consultations and image files; see ``standins/notion/``), because creating thousands of pages
through an API limited to 3 requests/s would take many minutes. This step writes the throwaway
Google service-account key whose ``token_uri`` is the Drive stand-in, then checks through the
real client libraries (the shared resources) that Notion and Drive answer.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from resources.environment import apply_local_defaults, current_environment, local_google_key_path

app = typer.Typer(add_completion=False)


def ensure_local_key(path: Path) -> Path:
    """Write the local service-account key file unless a valid one is already there."""
    from standins.google_drive import write_local_service_account

    if path.is_file() and '"token_uri"' in path.read_text(encoding="utf-8"):
        return path
    return write_local_service_account(path)


@app.command()
def prepare(
    scale: str = typer.Option("demo", "--scale", help="the stand-ins' dataset scale"),
    seed: int = typer.Option(20261121, "--seed", help="the stand-ins' dataset seed"),
) -> None:
    """Write the local Drive key and check that the Notion and Drive stand-ins answer."""
    del scale, seed  # the stand-ins seed themselves; accepted for the make target's sake
    if current_environment() != "local":
        print("[consultation_backup] PLATFORM_ENV is not local: nothing to seed", file=sys.stderr)
        return
    apply_local_defaults()
    from consultation_backup.settings import consultation_settings
    from resources.google_drive import GoogleDriveResource
    from resources.notion import NotionResource
    from resources.shared import google_drive, notion

    drive: GoogleDriveResource = google_drive.process_config_and_initialize()
    configured = drive.service_account_json.strip()
    key_path = Path(configured) if not configured.startswith("{") else local_google_key_path()
    ensure_local_key(key_path)
    print(f"[consultation_backup] local Google service-account key: {key_path}")

    client: NotionResource = notion.process_config_and_initialize()
    settings = consultation_settings.process_config_and_initialize()
    for name, database_id in (
        ("NOTION_CUSTOMERS_DATABASE_ID", settings.customers_database_id),
        ("NOTION_CONSULTATIONS_DATABASE_ID", settings.consultations_database_id),
    ):
        ds = client.data_source_id(database_id)
        print(f"[consultation_backup] Notion {name} -> data source {ds}")
    drive = drive.model_copy(update={"service_account_json": str(key_path)})
    folders = sum(1 for _ in drive.iter_folder(drive.root_folder_id))
    print(f"[consultation_backup] Drive root holds {folders} customer folders; demo data ready")


def main(argv: list[str] | None = None) -> int:
    code = app(args=argv if argv is not None else sys.argv[1:], standalone_mode=False)
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    raise SystemExit(main())
