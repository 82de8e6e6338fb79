"""`python -m consultation_backup.demo --scale S`: prepare the local demo of this domain.

The Notion and Google Drive stand-ins seed themselves (same seed -> same customers,
consultations and image files; see ``standins/notion/``), because creating
thousands of pages through an API limited to 3 requests/s would take many minutes. This step
writes the throwaway Google service-account key whose ``token_uri`` is the Drive stand-in,
then checks through the real client libraries that Notion and Drive answer.
"""

import argparse
import os
import sys
from pathlib import Path

from resources.environment import apply_local_defaults, current_environment

LOCAL_KEY_PATH = (
    Path(__file__).resolve().parent.parent / ".dagster_home" / "google-service-account.local.json"
)


def ensure_local_key(path: Path) -> Path:
    """Write the local service-account key file unless a valid one is already there."""
    from standins.google_drive import write_local_service_account

    if path.is_file() and '"token_uri"' in path.read_text(encoding="utf-8"):
        return path
    return write_local_service_account(path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m consultation_backup.demo")
    parser.add_argument("--scale", default="demo")
    parser.add_argument("--seed", type=int, default=20261121)
    parser.parse_args(argv)
    if current_environment() != "local":
        print("[consultation_backup] PLATFORM_ENV is not local: nothing to seed", file=sys.stderr)
        return 0
    apply_local_defaults()
    configured = os.environ.get("GOOGLE_SERVICE_ACCOUNT_JSON", "")
    key_path = (
        Path(configured)
        if configured and not configured.strip().startswith("{")
        else LOCAL_KEY_PATH
    )
    ensure_local_key(key_path)
    os.environ.setdefault("GOOGLE_SERVICE_ACCOUNT_JSON", str(key_path))
    print(f"[consultation_backup] local Google service-account key: {key_path}")

    from resources.google_drive import GoogleDriveResource
    from resources.notion import NotionResource

    notion = NotionResource(
        token=os.environ["NOTION_TOKEN"], base_url=os.environ["NOTION_BASE_URL"]
    )
    for var in ("NOTION_CUSTOMERS_DATABASE_ID", "NOTION_CONSULTATIONS_DATABASE_ID"):
        ds = notion.data_source_id(os.environ[var])
        print(f"[consultation_backup] Notion {var} -> data source {ds}")
    drive = GoogleDriveResource(
        service_account_json=str(key_path), base_url=os.environ["GOOGLE_DRIVE_BASE_URL"]
    )
    folders = sum(1 for _ in drive.iter_folder(os.environ["GOOGLE_DRIVE_ROOT_FOLDER_ID"]))
    print(f"[consultation_backup] Drive root holds {folders} customer folders; demo data ready")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
