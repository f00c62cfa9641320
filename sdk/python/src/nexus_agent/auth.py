"""Where a node's endpoints are, and its access tokens (OAuth2 client credentials)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import httpx

from .errors import AuthError


def ws_base(url: str) -> str:
    """`http://host:port/prefix` → `ws://host:port/prefix` (https → wss)."""
    parts = urlsplit(url.rstrip("/"))
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path, "", ""))


def http_base(url: str) -> str:
    """`ws://…` → `http://…` (wss → https); http(s) URLs unchanged."""
    parts = urlsplit(url.rstrip("/"))
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path, "", ""))


async def fetch_token(http: httpx.AsyncClient, client_id: str, client_secret: str) -> tuple[str, float]:
    """`POST /auth/token` → (access token, lifetime in seconds)."""
    try:
        resp = await http.post(
            "/auth/token",
            data={"grant_type": "client_credentials"},
            auth=(client_id, client_secret),
        )
    except httpx.HTTPError as e:
        raise AuthError(f"token request failed: {e!r}") from e
    if resp.status_code != 200:
        raise AuthError(f"token refused: {resp.status_code} {resp.text[:200]}")
    body = resp.json()
    return str(body["access_token"]), float(body.get("expires_in", 0))
