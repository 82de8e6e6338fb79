"""The Notion stand-in's HTTP layer: auth, ``Notion-Version``, rate limit, routes, errors."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from standins.base import FaultInjector, with_faults
from standins.notion.dataset import seed_workspace
from standins.notion.errors import NotionError, error_body, error_object
from standins.notion.shapes import normalize_id, rich_text, write_properties
from standins.notion.state import (
    API_VERSION,
    BOT_USER_ID,
    CONSULTATIONS_DS_LOCAL,
    CUSTOMERS_DS_LOCAL,
    DEFAULT_BURST,
    DEFAULT_RATE_PER_S,
    DataSource,
    NotionWorkspace,
)
from standins.notion.webhooks import WebhookSender, page_event, schema_event

Handler = Callable[[NotionWorkspace, Request, dict[str, Any]], dict[str, Any]]


def guard(ws: NotionWorkspace, request: Request) -> None:
    """Count the request, then check the token, ``Notion-Version`` and the rate limit."""
    ws.stats["requests"] += 1
    auth = request.headers.get("authorization", "")
    if not auth.startswith("Bearer ") or len(auth) < 12:
        raise NotionError(401, "unauthorized", "API token is invalid.")
    version = request.headers.get("notion-version")
    if not version:
        raise NotionError(
            400,
            "missing_version",
            "Notion-Version header failed validation: should be defined.",
        )
    if version < API_VERSION:
        raise NotionError(
            400,
            "validation_error",
            f"this stand-in implements Notion-Version {API_VERSION}; got {version}.",
        )
    ws.rate_limit(auth)


async def _json_body(request: Request) -> dict[str, Any]:
    if request.method not in ("POST", "PATCH"):
        return {}
    raw = await request.body()
    try:
        return json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        raise NotionError(400, "invalid_json", "Error parsing JSON body.") from None


def endpoint(ws: NotionWorkspace, handler: Handler) -> Callable[[Request], Awaitable[JSONResponse]]:
    """A route answering ``handler``'s result, or Notion's error object for a NotionError."""

    async def wrapped(request: Request) -> JSONResponse:
        ws.base_url = str(request.base_url).rstrip("/")
        try:
            guard(ws, request)
            body = await _json_body(request)
            with ws.lock:
                return JSONResponse(handler(ws, request, body))
        except NotionError as exc:
            return JSONResponse(
                error_object(exc.status, exc.code, exc.message),
                status_code=exc.status,
                headers=exc.headers,
            )

    return wrapped


def schema_object(ds: DataSource) -> dict[str, Any]:
    """A data source's ``properties`` as ``GET /v1/data_sources/{id}`` describes them."""
    props = {}
    for name, typ in ds.schema.items():
        spec: dict[str, Any] = {}
        if typ == "formula":
            spec = {"expression": 'length(prop("상담일지"))'}
        if typ == "relation":
            dual = ds.pid(name) in ds.dual_ids
            spec = {
                "data_source_id": CONSULTATIONS_DS_LOCAL if dual else CUSTOMERS_DS_LOCAL,
                "type": "dual_property" if dual else "single_property",
                "dual_property" if dual else "single_property": {},
            }
        props[name] = {"id": ds.pid(name), "name": name, "type": typ, typ: spec}
    return props


def get_database(ws: NotionWorkspace, request: Request, body: dict[str, Any]) -> dict[str, Any]:
    db_id = normalize_id(request.path_params["database_id"])
    db = ws.databases.get(db_id)
    if db is None:
        raise NotionError(404, "object_not_found", f"Could not find database with ID: {db_id}.")
    return {
        "object": "database",
        "id": db_id,
        "title": rich_text(db["title"]),
        "in_trash": False,
        "is_inline": False,
        "parent": {"type": "workspace", "workspace": True},
        "data_sources": [{"id": d, "name": ws.data_sources[d].name} for d in db["data_sources"]],
    }


def _data_source(ws: NotionWorkspace, request: Request) -> DataSource:
    ds_id = normalize_id(request.path_params["data_source_id"])
    ds = ws.data_sources.get(ds_id)
    if ds is None:
        raise NotionError(404, "object_not_found", f"Could not find data source with ID: {ds_id}.")
    return ds


def get_data_source(ws: NotionWorkspace, request: Request, body: dict[str, Any]) -> dict[str, Any]:
    ds = _data_source(ws, request)
    return {
        "object": "data_source",
        "id": ds.id,
        "title": rich_text(ds.name),
        "parent": {"type": "database_id", "database_id": ds.database_id},
        "properties": schema_object(ds),
    }


def query(ws: NotionWorkspace, request: Request, body: dict[str, Any]) -> dict[str, Any]:
    ds = _data_source(ws, request)
    result = ws.query(ds, body)
    wanted = request.query_params.getlist("filter_properties")
    if wanted:
        # only the properties asked for (by id or name), as Notion answers filter_properties
        names = {ds.resolve(w) for w in wanted}
        if None in names:
            raise NotionError(
                400, "validation_error", f"filter_properties: unknown property in {wanted}."
            )
        for page in result["results"]:
            page["properties"] = {n: v for n, v in page["properties"].items() if n in names}
    return result


def patch_data_source(
    ws: NotionWorkspace, request: Request, body: dict[str, Any]
) -> dict[str, Any]:
    """``PATCH /v1/data_sources/{id}``: rename, retype, remove or add properties; title."""
    ds = _data_source(ws, request)
    if body.get("title"):
        ds.name = "".join((t.get("text") or {}).get("content", "") for t in body["title"])
    ws.update_schema(ds, body.get("properties") or {})
    schema_event(getattr(ws, "webhooks", None), ds)
    return get_data_source(ws, request, body)


def create_data_source(
    ws: NotionWorkspace, request: Request, body: dict[str, Any]
) -> dict[str, Any]:
    """``POST /v1/data_sources``: one more data source in an existing database."""
    parent = body.get("parent") or {}
    if not parent.get("database_id"):
        raise NotionError(
            400,
            "validation_error",
            "body failed validation: body.parent.database_id should be defined.",
        )
    title = "".join((t.get("text") or {}).get("content", "") for t in body.get("title") or [])
    schema = {}
    for name, spec in (body.get("properties") or {}).items():
        typ = next((k for k in spec if k not in ("name", "description")), None)
        if typ is None:
            raise NotionError(400, "validation_error", f"property {name} needs a type.")
        schema[spec.get("name") or name] = typ
    ds = ws.add_data_source(parent["database_id"], title, schema)
    return {
        "object": "data_source",
        "id": ds.id,
        "title": rich_text(ds.name),
        "parent": {"type": "database_id", "database_id": ds.database_id},
        "properties": schema_object(ds),
    }


def get_page_property(
    ws: NotionWorkspace, request: Request, body: dict[str, Any]
) -> dict[str, Any]:
    ds, page = ws.page(request.path_params["page_id"])
    params: dict[str, Any] = dict(request.query_params)
    if "page_size" in params:
        with contextlib.suppress(ValueError):
            params["page_size"] = int(params["page_size"])
    return ws.property_item(ds, page, request.path_params["property_id"], params)


def create_file_upload(
    ws: NotionWorkspace, request: Request, body: dict[str, Any]
) -> dict[str, Any]:
    upload = ws.create_upload(body)
    return {k: v for k, v in upload.items() if not k.startswith("_")}


def get_file_upload(ws: NotionWorkspace, request: Request, body: dict[str, Any]) -> dict[str, Any]:
    upload = ws.upload(request.path_params["upload_id"])
    return {k: v for k, v in upload.items() if not k.startswith("_")}


def _multipart_file(content_type: str, raw: bytes) -> tuple[str | None, str | None, bytes]:
    """(filename, content type, bytes) of the ``file`` part of a multipart/form-data body."""
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + raw
    )
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "file":
            data = part.get_payload(decode=True) or b""
            return part.get_filename(), part.get_content_type(), bytes(data)
    raise NotionError(400, "validation_error", "body failed validation: file should be defined.")


def send_file_upload_route(ws: NotionWorkspace) -> Callable[[Request], Awaitable[JSONResponse]]:
    """``POST /v1/file_uploads/{id}/send`` (multipart/form-data, not JSON)."""

    async def send(request: Request) -> JSONResponse:
        ws.base_url = str(request.base_url).rstrip("/")
        try:
            guard(ws, request)
            ctype = request.headers.get("content-type", "")
            if not ctype.startswith("multipart/form-data"):
                raise NotionError(
                    400, "validation_error", "Content-Type must be multipart/form-data."
                )
            name, part_type, data = _multipart_file(ctype, await request.body())
            with ws.lock:
                sent = ws.send_upload(request.path_params["upload_id"], name, part_type, data)
            return JSONResponse(sent)
        except NotionError as exc:
            return JSONResponse(
                error_object(exc.status, exc.code, exc.message),
                status_code=exc.status,
                headers=exc.headers,
            )

    return send


def file_download_route(ws: NotionWorkspace) -> Callable[[Request], Awaitable[Response]]:
    """The presigned GET of a hosted file (S3 in Notion: no token, XML errors)."""

    async def download(request: Request) -> Response:
        try:
            with ws.lock:
                ctype, data = ws.download(request.path_params["key"], request.url.query)
        except NotionError as exc:
            xml = (
                f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{exc.code}</Code>'
                f"<Message>{exc.message}</Message></Error>"
            )
            return Response(xml, status_code=exc.status, media_type="application/xml")
        return Response(data, media_type=ctype)

    return download


def _parent_data_source(ws: NotionWorkspace, parent: dict[str, Any]) -> DataSource:
    ds_id = parent.get("data_source_id")
    if ds_id is None and parent.get("database_id"):
        db = ws.databases.get(normalize_id(parent["database_id"]))
        if db is None:
            raise NotionError(
                404,
                "object_not_found",
                f"Could not find database with ID: {parent['database_id']}.",
            )
        ds_id = db["data_sources"][0]
    ds = ws.data_sources.get(normalize_id(ds_id or ""))
    if ds is None:
        raise NotionError(
            400 if ds_id is None else 404,
            "validation_error" if ds_id is None else "object_not_found",
            "body failed validation: body.parent.data_source_id should be defined.",
        )
    return ds


def create_page(ws: NotionWorkspace, request: Request, body: dict[str, Any]) -> dict[str, Any]:
    ds = _parent_data_source(ws, body.get("parent") or {})
    props = write_properties(ds, body.get("properties") or {})
    if not any(ds.schema[n] == "title" for n in props):
        raise NotionError(400, "validation_error", "Title is not provided.")
    rendered = ws.render(ds, ws.insert_page(ds, props))
    page_event(getattr(ws, "webhooks", None), "page.created", rendered, ds)
    return rendered


def get_page(ws: NotionWorkspace, request: Request, body: dict[str, Any]) -> dict[str, Any]:
    ds, page = ws.page(request.path_params["page_id"])
    return ws.render(ds, page)


def patch_page(ws: NotionWorkspace, request: Request, body: dict[str, Any]) -> dict[str, Any]:
    page = ws.update_page(request.path_params["page_id"], body)
    ds = ws.data_sources[ws.page_index[page["id"]]]
    trash = body.get("in_trash", body.get("archived"))
    kind = {True: "page.deleted", False: "page.undeleted"}.get(trash, "page.properties_updated")
    page_event(getattr(ws, "webhooks", None), kind, page, ds)
    return ws.render(ds, page)


def users_me(ws: NotionWorkspace, request: Request, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "user",
        "id": BOT_USER_ID,
        "name": "consultation-backup",
        "avatar_url": None,
        "type": "bot",
        "bot": {
            "owner": {"type": "workspace", "workspace": True},
            "workspace_name": "MSPharmHQ (stand-in)",
        },
    }


def build_app(ws: NotionWorkspace) -> Starlette:
    """The Notion routes over ``ws`` (no fault injection; see ``create_app``)."""

    async def stats(request: Request) -> JSONResponse:
        # not a Notion endpoint: request accounting for benchmarks (429s, queries, cap hits)
        return JSONResponse(ws.stats)

    def route(path: str, handler: Handler, method: str) -> Route:
        return Route(path, endpoint(ws, handler), methods=[method])

    app = Starlette(
        routes=[
            Route("/_stats", stats, methods=["GET"]),
            route("/v1/users/me", users_me, "GET"),
            route("/v1/databases/{database_id}", get_database, "GET"),
            route("/v1/data_sources", create_data_source, "POST"),
            route("/v1/data_sources/{data_source_id}", get_data_source, "GET"),
            route("/v1/data_sources/{data_source_id}", patch_data_source, "PATCH"),
            route("/v1/data_sources/{data_source_id}/query", query, "POST"),
            route("/v1/pages", create_page, "POST"),
            route("/v1/pages/{page_id}", get_page, "GET"),
            route("/v1/pages/{page_id}", patch_page, "PATCH"),
            route("/v1/pages/{page_id}/properties/{property_id}", get_page_property, "GET"),
            route("/v1/file_uploads", create_file_upload, "POST"),
            route("/v1/file_uploads/{upload_id}", get_file_upload, "GET"),
            Route(
                "/v1/file_uploads/{upload_id}/send", send_file_upload_route(ws), methods=["POST"]
            ),
            Route("/_files/{key}/{name:path}", file_download_route(ws), methods=["GET"]),
        ]
    )
    app.state.workspace = ws
    return app


def subscribe_webhooks(app: ASGIApp, url: str) -> WebhookSender:
    """Create a webhook subscription to ``url`` on a running stand-in (``create_app``'s app):
    the verification token is POSTed at once, then every page and schema change is sent signed."""
    ws = app.workspace  # type: ignore[attr-defined]
    ws.webhooks = WebhookSender(url)
    ws.webhooks.verify()
    return ws.webhooks


def create_app(
    seed: int = 20261121,
    scale: str | int = "demo",
    *,
    rate_per_s: float = DEFAULT_RATE_PER_S,
    burst: float = DEFAULT_BURST,
    bad_items: bool = True,
    injector: FaultInjector | None = None,
) -> ASGIApp:
    """The Notion stand-in seeded with the consultation demo workspace, wrapped with faults."""
    ws = NotionWorkspace(rate_per_s=rate_per_s, burst=burst)
    seed_workspace(ws, seed, scale, bad_items=bad_items)
    app = with_faults(build_app(ws), injector or FaultInjector(), error_body=error_body)
    app.workspace = ws  # type: ignore[attr-defined]
    return app
