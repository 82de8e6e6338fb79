"""The Drive side of the demo dataset: the customer folders and consultation images."""

from __future__ import annotations

from standins.google_drive.state import DriveState
from standins.notion.dataset import consultation_dataset
from standins.notion.state import DRIVE_ROOT_FOLDER_LOCAL


def seed_drive(state: DriveState, seed: int, scale: str | int, bad_items: bool = True) -> None:
    """The folders and files of the Notion stand-in's dataset for the same seed and scale."""
    dataset = consultation_dataset(seed, scale, bad_items=bad_items)
    state.add_folder(DRIVE_ROOT_FOLDER_LOCAL, "MSPharmHQ", None)
    for folder_id, name in dataset.folders.items():
        state.add_folder(folder_id, name, DRIVE_ROOT_FOLDER_LOCAL)
    for spec in dataset.files:
        state.add_spec(spec)
