"""Checking AWS Signature Version 4 on requests that reach ``conveyor serve``.

The signature is computed again over the request as received, with botocore's
own signer (the code that made it on the client's side), from the headers the
client says it signed, and compared in constant time. A request signed with
another secret, for another key, too long ago, or not signed at all is refused
with the services' own error, which botocore raises as a modelled exception.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

MAX_SKEW = timedelta(minutes=15)
_AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)"
    r"/aws4_request,\s*SignedHeaders=(?P<headers>[^,]+),\s*Signature=(?P<signature>[0-9a-f]{64})$"
)


@dataclass(frozen=True)
class KeyPair:
    access_key_id: str
    secret_access_key: str


class SignatureRefused(Exception):
    """Why a request's signature is not accepted, as the service names it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def verify(
    keys: KeyPair,
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    now: datetime | None = None,
) -> str:
    """Check the request's SigV4 signature; returns the signing service's name.
    ``headers`` are the received headers with lowercase names."""
    found = _AUTHORIZATION.match(headers.get("authorization", ""))
    if found is None:
        raise SignatureRefused(
            "MissingAuthenticationTokenException",
            "Request is missing Authentication Token (sign it with SigV4, as the AWS SDKs and CLI do)",
        )
    if not hmac.compare_digest(found["key"].encode(), keys.access_key_id.encode()):
        raise SignatureRefused(
            "UnrecognizedClientException", "The security token included in the request is invalid."
        )
    stamp = headers.get("x-amz-date", "")
    try:
        signed_at = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise SignatureRefused("IncompleteSignatureException", "X-Amz-Date is missing or malformed") from None
    if abs((now or datetime.now(UTC)) - signed_at) > MAX_SKEW:
        raise SignatureRefused(
            "InvalidSignatureException", f"Signature expired: {stamp} is more than 15 minutes from now"
        )
    if stamp[:8] != found["date"]:
        raise SignatureRefused("InvalidSignatureException", "the credential's date is not X-Amz-Date's")
    signed = found["headers"].split(";")
    missing = [name for name in signed if name not in headers]
    if missing:
        raise SignatureRefused(
            "IncompleteSignatureException", f"signed headers missing: {', '.join(missing)}"
        )
    # botocore (~0.1 s to import) only when a signed request arrives, not for every `conveyor` command.
    from botocore.auth import SigV4Auth  # type: ignore[import-untyped]
    from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
    from botocore.credentials import Credentials  # type: ignore[import-untyped]

    request = AWSRequest(method=method, url=url, headers={name: headers[name] for name in signed}, data=body)
    request.context["timestamp"] = stamp
    signer = SigV4Auth(
        Credentials(keys.access_key_id, keys.secret_access_key), found["service"], found["region"]
    )
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    if not hmac.compare_digest(expected.encode(), found["signature"].encode()):
        raise SignatureRefused(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method.",
        )
    return found["service"]
