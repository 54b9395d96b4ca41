"""The ``Authorization`` check shared by ``/metrics`` and ``/track``."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Callable

from .config import AuthConfig


def authorizer(auth: AuthConfig | None) -> Callable[[bytes], bool] | None:
    """A check of the ``Authorization`` header, or None when the endpoint is open.

    The scheme is case-insensitive (RFC 9110) and the secret is compared in constant time.
    """
    if auth is None:
        return None
    if auth.bearer_token:
        token = auth.bearer_token.encode()

        def bearer(header: bytes) -> bool:
            scheme, _, value = header.strip().partition(b" ")
            return scheme.lower() == b"bearer" and hmac.compare_digest(value.strip(), token)

        return bearer
    if auth.basic_username is not None and auth.basic_password is not None:
        pair = f"{auth.basic_username}:{auth.basic_password}".encode()

        def basic(header: bytes) -> bool:
            scheme, _, value = header.strip().partition(b" ")
            if scheme.lower() != b"basic":
                return False
            try:
                decoded = base64.b64decode(value.strip(), validate=True)
            except (binascii.Error, ValueError):
                return False
            return hmac.compare_digest(decoded, pair)

        return basic
    return None
