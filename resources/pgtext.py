"""Text as PostgreSQL can store it (no dependencies: used by the pure transform modules)."""

from __future__ import annotations

from typing import Any

NUL = "\x00"  # PostgreSQL text and jsonb cannot hold it


def storable(value: Any) -> Any:
    """``value`` with every NUL character (U+0000) replaced by U+FFFD, in a string or in the
    strings (and keys) of dicts and lists: what PostgreSQL text and jsonb can store."""
    if isinstance(value, str):
        return value.replace(NUL, "\ufffd")
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]
    return value
