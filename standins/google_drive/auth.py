"""OAuth for the Drive stand-in: the JWT-bearer token grant and local service-account keys."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import jwt

from resources.environment import EMULATOR_PORTS
from standins.google_drive.state import DriveState

LOCAL_TOKEN_URI = f"http://127.0.0.1:{EMULATOR_PORTS['google_drive']}/token"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_LIFETIME_S = 3599


@dataclass(frozen=True)
class TokenAnswer:
    """The token endpoint's JSON body and HTTP status."""

    body: dict[str, Any]
    status: int = 200


def _check_assertion(state: DriveState, assertion: str) -> None:
    """Verify against a registered service account's key; without any, accept any RS256 JWT."""
    header = jwt.get_unverified_header(assertion)
    claims = jwt.decode(assertion, options={"verify_signature": False})
    issuer: Any = claims.get("iss")
    key = state.public_keys.get(issuer)
    if key is not None:
        jwt.decode(assertion, key, algorithms=["RS256"], audience=claims.get("aud"))
    elif state.public_keys or header.get("alg") != "RS256":
        raise jwt.InvalidTokenError("unknown service account")


def issue_token(state: DriveState, form: str) -> TokenAnswer:
    """Answer a ``POST /token`` form body: an access token, or the OAuth error."""
    fields = dict(p.split("=", 1) for p in form.split("&") if "=" in p)
    grant = unquote_plus(fields.get("grant_type", ""))
    assertion = unquote_plus(fields.get("assertion", ""))
    if grant != JWT_BEARER_GRANT or not assertion:
        return TokenAnswer(
            {"error": "unsupported_grant_type", "error_description": "Invalid grant_type"}, 400
        )
    try:
        _check_assertion(state, assertion)
    except jwt.PyJWTError as exc:
        return TokenAnswer(
            {"error": "invalid_grant", "error_description": f"Invalid JWT: {exc}"}, 400
        )
    access = "ya29.local-" + secrets.token_urlsafe(24)
    with state.lock:
        state.tokens.add(access)
        state.stats["tokens"] += 1
    return TokenAnswer(
        {"access_token": access, "expires_in": TOKEN_LIFETIME_S, "token_type": "Bearer"}
    )


def write_local_service_account(
    path: str | Path,
    token_uri: str = LOCAL_TOKEN_URI,
    client_email: str = "consultation-backup@local-stand-in.iam.gserviceaccount.com",
) -> Path:
    """Write a throwaway service-account key file whose ``token_uri`` is the stand-in.

    A fresh RSA key is generated each time (never committed; only the stand-in trusts it).
    Returns the path written (mode 0600).
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    info = {
        "type": "service_account",
        "project_id": "local-stand-in",
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": client_email,
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "universe_domain": "googleapis.com",
    }
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(info, indent=2), encoding="utf-8")
    target.chmod(0o600)
    return target
