"""The part of Drive's ``q`` search syntax the backup uses, and partial responses (``fields``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from standins.google_drive.state import DriveFile

DEFAULT_FILE_FIELDS = ("kind", "id", "name", "mimeType")
DEFAULT_LIST_FIELDS = ("kind", "incompleteSearch", "nextPageToken", "files")

_Q_PARENT = re.compile(r"'([^']+)'\s+in\s+parents")
_Q_TRASHED = re.compile(r"trashed\s*=\s*(true|false)")


@dataclass(frozen=True)
class FileQuery:
    """``'<folder>' in parents`` and ``trashed = true|false`` (None: not in the query)."""

    parent: str | None
    trashed: bool | None

    def matches(self, f: DriveFile) -> bool:
        return (self.parent is None or self.parent in f.parents) and (
            self.trashed is None or f.trashed == self.trashed
        )


def parse_q(q: str) -> FileQuery:
    """The terms of a ``q`` expression this stand-in understands (others are ignored)."""
    parent = _Q_PARENT.search(q)
    trashed = _Q_TRASHED.search(q)
    return FileQuery(
        parent.group(1) if parent else None,
        (trashed.group(1) == "true") if trashed else None,
    )


def split_fields(spec: str) -> dict[str, str | None]:
    """``a,b(c,d)`` -> {"a": None, "b": "c,d"} (Drive's partial-response ``fields`` syntax)."""
    out: dict[str, str | None] = {}
    depth, start = 0, 0
    parts = []
    for i, ch in enumerate(spec):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(spec[start:i])
            start = i + 1
    parts.append(spec[start:])
    for part in (p.strip() for p in parts):
        if not part:
            continue
        if "(" in part and part.endswith(")"):
            name, inner = part.split("(", 1)
            out[name.strip()] = inner[:-1]
        else:
            out[part] = None
    return out


def select_fields(
    obj: dict[str, Any], spec: str | None, default: tuple[str, ...]
) -> dict[str, Any]:
    """The fields of ``obj`` a ``fields`` parameter asks for (``default`` without one)."""
    if spec is None:
        return {k: obj[k] for k in default if k in obj}
    fields = split_fields(spec)
    if "*" in fields:
        return obj
    return {k: obj[k] for k in fields if k in obj}
