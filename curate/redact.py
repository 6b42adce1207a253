"""URLs without their secrets, for everything that is stored or logged.

Source URLs may carry credentials (``https://user:pass@host/...``) and signatures or tokens
in the query (presigned S3/GCS/Azure/CloudFront URLs, API keys). The download needs them;
sample json, ledger rows, error messages and logs must not: a dataset is shared, and a
signature is a credential until it expires.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus, urlsplit, urlunsplit

SECRET_PARAMS = frozenset({
    "x-amz-signature", "x-amz-credential", "x-amz-security-token", "x-goog-signature", "x-goog-credential",
    "x-goog-security-token", "googleaccessid", "signature", "sig", "token", "access_token", "id_token", "auth",
    "authorization", "key", "api_key", "apikey", "password", "passwd", "secret", "client_secret", "policy",
    "key-pair-id", "hdnts", "hmac", "jwt", "session", "sessionid", "awsaccesskeyid", "security-token",
})  # fmt: skip
"""Query parameters (compared case-insensitively) whose values are credentials."""
EXPIRY_PARAMS = frozenset({"expires", "x-amz-expires", "x-amz-date", "se", "st", "sp", "sv", "sr", "skoid", "sktid"})
"""Parameters that belong to a signature: dropped with it, meaningless without it."""
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+")


def redact_url(url: str) -> str:
    """``url`` without ``user:pass@`` and without secret query parameters (and, when a signature was
    there, the expiry and signing parameters that came with it). Text that is not a URL is returned as is."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    segments = [segment for segment in parts.query.split("&") if segment]
    names = [unquote_plus(segment.split("=", 1)[0]).lower() for segment in segments]
    signed = any(_is_secret(name) for name in names)
    if netloc == parts.netloc and not signed:
        return url
    kept = [seg for seg, name in zip(segments, names, strict=True) if not _is_secret(name) and name not in EXPIRY_PARAMS]
    query = "&".join(kept) if signed else parts.query
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str) -> str:
    """Every URL inside ``text`` (an error message, a log line) redacted."""
    return _URL_IN_TEXT.sub(_redact_match, text)


def _redact_match(match: re.Match[str]) -> str:
    url = match.group(0)
    trail = len(url) - len(url.rstrip(".,;:!?)]}"))
    return redact_url(url[: len(url) - trail]) + url[len(url) - trail :]


def _is_secret(name: str) -> bool:
    return name in SECRET_PARAMS or name.startswith(("x-amz-signature", "x-goog-signature"))
