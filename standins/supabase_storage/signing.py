"""Signed URLs: create one or many (with the key), then GET with ``?token=`` (without it)."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from standins.supabase_storage.objects import serve
from standins.supabase_storage.state import Bucket, StorageError, StorageState

NOT_FOUND_OR_DENIED = "Either the object does not exist or you do not have access to it"


def sign(state: StorageState, b: Bucket, path: str, expires_in: Any) -> str | None:
    """The signed path of an object for ``expires_in`` seconds (None if there is no object)."""
    if path not in b.objects:
        return None
    try:
        seconds = int(expires_in)
    except (TypeError, ValueError):
        raise StorageError(400, "400", "Invalid Input", "expiresIn must be a number") from None
    if seconds < 1:
        raise StorageError(400, "400", "Invalid Input", "expiresIn must be >= 1")
    now = int(time.time())
    token = jwt.encode(
        {"url": f"{b.id}/{path}", "iat": now, "exp": now + seconds},
        state.signing_secret,
        algorithm="HS256",
    )
    return f"/object/sign/{b.id}/{quote(path)}?token={token}"


async def create_signed_url(state: StorageState, request: Request) -> Response:
    b = state.bucket(request.path_params["bucket"])
    body = await request.json()
    url = sign(state, b, request.path_params["path"], body.get("expiresIn"))
    if url is None:
        raise StorageError(400, "404", "not_found", "Object not found")
    return JSONResponse({"signedURL": url})


async def create_signed_urls(state: StorageState, request: Request) -> Response:
    b = state.bucket(request.path_params["bucket"])
    body = await request.json()
    out = []
    for path in body.get("paths") or []:
        url = sign(state, b, path, body.get("expiresIn"))
        out.append({"error": None if url else NOT_FOUND_OR_DENIED, "path": path, "signedURL": url})
    return JSONResponse(out)


async def get_signed(state: StorageState, request: Request) -> Response:
    """Serve an object to whoever holds an unexpired token signed for its path."""
    bucket_id, path = request.path_params["bucket"], request.path_params["path"]
    try:
        claims = jwt.decode(
            request.query_params.get("token", ""), state.signing_secret, algorithms=["HS256"]
        )
    except jwt.ExpiredSignatureError:
        raise StorageError(
            400, "InvalidJWT", "InvalidJWT", '"exp" claim timestamp check failed'
        ) from None
    except jwt.PyJWTError:
        raise StorageError(400, "InvalidJWT", "InvalidJWT", "invalid signature") from None
    if claims.get("url") != f"{bucket_id}/{path}":
        raise StorageError(
            400, "InvalidSignature", "InvalidSignature", "The url do not match the signature"
        )
    return serve(state, state.bucket(bucket_id), path)
