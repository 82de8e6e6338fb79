"""The Drive stand-in's HTTP layer: token endpoint, file metadata/media, folder listings."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from standins.base import FaultInjector, with_faults
from standins.google_drive.auth import issue_token
from standins.google_drive.dataset import seed_drive
from standins.google_drive.errors import drive_error, error_body
from standins.google_drive.filters import (
    DEFAULT_FILE_FIELDS,
    DEFAULT_LIST_FIELDS,
    parse_q,
    select_fields,
    split_fields,
)
from standins.google_drive.state import FOLDER_MIME, DriveFile, DriveState

Handler = Callable[[DriveState, Request], Awaitable[Response]]

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = "100"


def _answer(status: int, reason: str, message: str) -> JSONResponse:
    return JSONResponse(drive_error(status, reason, message), status_code=status)


def _authorized(state: DriveState, request: Request) -> bool:
    auth = request.headers.get("authorization", "")
    return auth.startswith("Bearer ") and auth[7:] in state.tokens


def _unauthorized() -> JSONResponse:
    return _answer(401, "authError", "Request had invalid authentication credentials.")


async def token(state: DriveState, request: Request) -> Response:
    answer = issue_token(state, (await request.body()).decode())
    return JSONResponse(answer.body, answer.status)


async def get_file(state: DriveState, request: Request) -> Response:
    state.stats["requests"] += 1
    if not _authorized(state, request):
        return _unauthorized()
    file_id = request.path_params["file_id"]
    with state.lock:
        f = state.files.get(file_id)
    if f is None:  # a trashed file is still there (trashed: true); only a deleted one is gone
        return _answer(404, "notFound", f"File not found: {file_id}.")
    if request.query_params.get("alt") == "media":
        if f.mime_type == FOLDER_MIME:
            return _answer(
                403, "fileNotDownloadable", "Only files with binary content can be downloaded."
            )
        state.stats["downloads"] += 1
        return Response(f.data(), media_type=f.mime_type)
    state.stats["metadata"] += 1
    return JSONResponse(
        select_fields(f.metadata(), request.query_params.get("fields"), DEFAULT_FILE_FIELDS)
    )


def _file_list(chunk: list[DriveFile], spec: str | None, next_offset: int | None) -> dict[str, Any]:
    top = split_fields(spec) if spec is not None else dict.fromkeys(DEFAULT_LIST_FIELDS)
    file_spec = top.get("files")
    body: dict[str, Any] = {
        "kind": "drive#fileList",
        "incompleteSearch": False,
        "files": [
            f.metadata()
            if "*" in top
            else select_fields(f.metadata(), file_spec, DEFAULT_FILE_FIELDS)
            for f in chunk
        ],
    }
    if next_offset is not None:
        body["nextPageToken"] = base64.urlsafe_b64encode(str(next_offset).encode()).decode()
    if "*" not in top:
        body = {k: v for k, v in body.items() if k in top}
    return body


async def list_files(state: DriveState, request: Request) -> Response:
    state.stats["requests"] += 1
    if not _authorized(state, request):
        return _unauthorized()
    params = request.query_params
    try:
        page_size = int(params.get("pageSize", DEFAULT_PAGE_SIZE))
    except ValueError:
        page_size = -1
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        return _answer(400, "invalid", "Invalid value for pageSize.")
    query = parse_q(params.get("q", ""))
    with state.lock:
        matched = sorted(
            (f for f in state.files.values() if query.matches(f)), key=lambda f: (f.name, f.id)
        )
    offset = 0
    if params.get("pageToken"):
        try:
            offset = int(base64.urlsafe_b64decode(params["pageToken"]).decode())
        except (ValueError, UnicodeDecodeError):
            return _answer(400, "invalid", "Invalid pageToken.")
    chunk = matched[offset : offset + page_size]
    state.stats["lists"] += 1
    more = offset + page_size < len(matched)
    return JSONResponse(
        _file_list(chunk, params.get("fields"), offset + page_size if more else None)
    )


def build_app(state: DriveState) -> Starlette:
    """The Drive and token routes over ``state`` (no fault injection; see ``create_app``)."""

    def bound(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def wrapped(request: Request) -> Response:
            return await handler(state, request)

        return wrapped

    app = Starlette(
        routes=[
            Route("/token", bound(token), methods=["POST"]),
            Route("/drive/v3/files/{file_id}", bound(get_file), methods=["GET"]),
            Route("/drive/v3/files", bound(list_files), methods=["GET"]),
        ]
    )
    app.state.drive = state
    return app


def create_app(
    seed: int = 20261121,
    scale: str | int = "demo",
    *,
    bad_items: bool = True,
    injector: FaultInjector | None = None,
    prerender: bool = False,
) -> ASGIApp:
    """The Drive stand-in holding the demo dataset's folders and images, wrapped with faults.

    ``prerender`` draws every image up front (benchmarks: the stand-in's synthetic content is not
    part of what is measured); otherwise images are drawn on first request.
    """
    state = DriveState()
    seed_drive(state, seed, scale, bad_items=bad_items)
    if prerender:
        for f in state.files.values():
            f.data()
    app = with_faults(build_app(state), injector or FaultInjector(), error_body=error_body)
    app.drive = state  # type: ignore[attr-defined]
    return app
