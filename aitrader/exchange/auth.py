"""API keys and HMAC-SHA256 request signing as Binance does it.

Any API key is accepted; its secret is derived, so no key store is needed::

    secret_for(api_key) = hmac_sha256(master_secret, api_key).hexdigest()

with ``DEFAULT_MASTER_SECRET`` unless the exchange is configured with another master.
The signed payload is the raw query string followed by the raw request body (without the
``signature`` parameter), exactly as in Binance's documented examples.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from urllib.parse import unquote_plus

from aitrader.exchange import errors

DEFAULT_MASTER_SECRET = "aitrader-local-exchange"
#: The API key the engine and tests use by default against the local exchange.
LOCAL_API_KEY = "aitraderLocalExchangeKey0000000000000000000000000000000000000000"
_KEY_FORMAT = re.compile(r"^[A-Za-z0-9_\-]{1,128}$")
_SIGNATURE = re.compile(r"(^|&)signature=([^&]*)")


def secret_for(api_key: str, master_secret: str = DEFAULT_MASTER_SECRET) -> str:
    """The HMAC secret that belongs to ``api_key``."""
    return hmac.new(master_secret.encode(), api_key.encode(), hashlib.sha256).hexdigest()


#: The secret of ``LOCAL_API_KEY`` under the default master secret.
LOCAL_API_SECRET = secret_for(LOCAL_API_KEY)


def sign(payload: str, secret: str) -> str:
    """HMAC-SHA256 hex signature of ``payload``."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def check_api_key(api_key: str | None) -> str:
    """Return the key if well-formed, else raise -2014."""
    if not api_key or not _KEY_FORMAT.match(api_key):
        raise errors.api_key_format_invalid()
    return api_key


def _strip_signature(part: str) -> tuple[str, str | None]:
    match = _SIGNATURE.search(part)
    if match is None:
        return part, None
    stripped = part[: match.start()] + part[match.end() :]
    if match.group(1) == "" and stripped.startswith("&"):
        stripped = stripped[1:]
    return stripped, match.group(2)


def verify_signature(query: str, body: str, secret: str) -> None:
    """Raise -1022 unless ``signature`` (in query or body) signs query + body.

    The payload is accepted as sent, or with percent-escapes decoded (form bodies are
    percent-encoded by HTTP clients after signing).
    """
    query_rest, query_sig = _strip_signature(query)
    body_rest, body_sig = _strip_signature(body)
    signature = query_sig or body_sig
    if not signature:
        raise errors.missing_parameter("signature")
    payload = query_rest + body_rest
    for candidate in (payload, unquote_plus(payload)):
        if hmac.compare_digest(sign(candidate, secret), signature.lower()):
            return
    raise errors.bad_signature()
