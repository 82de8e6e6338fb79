"""Bucket routes: create, list, get, update, empty, delete."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from standins.supabase_storage.state import Bucket, StorageError, StorageState, checked_size_limit


async def create_bucket(state: StorageState, request: Request) -> Response:
    body = await request.json()
    bid = body.get("id") or body.get("name")
    if not bid:
        raise StorageError(400, "400", "Invalid Input", "body must have required property 'name'")
    if bid in state.buckets:
        raise StorageError(400, "409", "Duplicate", "The resource already exists")
    limit = checked_size_limit(body.get("file_size_limit"))
    state.buckets[bid] = Bucket(
        bid,
        body.get("name") or bid,
        bool(body.get("public", False)),
        limit,
        body.get("allowed_mime_types"),
    )
    return JSONResponse({"name": bid})


async def list_buckets(state: StorageState, request: Request) -> Response:
    return JSONResponse([b.as_json() for b in state.buckets.values()])


async def get_bucket(state: StorageState, request: Request) -> Response:
    return JSONResponse(state.bucket(request.path_params["bucket"]).as_json())


async def update_bucket(state: StorageState, request: Request) -> Response:
    b = state.bucket(request.path_params["bucket"])
    body = await request.json()
    if "file_size_limit" in body:
        b.file_size_limit = checked_size_limit(body["file_size_limit"])
    for attr in ("public", "allowed_mime_types"):
        if attr in body:
            setattr(b, attr, body[attr])
    return JSONResponse({"message": "Successfully updated"})


async def empty_bucket(state: StorageState, request: Request) -> Response:
    state.bucket(request.path_params["bucket"]).objects.clear()
    return JSONResponse({"message": "Successfully emptied"})


async def delete_bucket(state: StorageState, request: Request) -> Response:
    b = state.bucket(request.path_params["bucket"])
    if b.objects:
        raise StorageError(
            400, "409", "InvalidRequest", "The bucket you tried to delete is not empty"
        )
    del state.buckets[b.id]
    return JSONResponse({"message": "Successfully deleted"})
