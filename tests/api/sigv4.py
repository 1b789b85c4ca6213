"""An independent check of a SigV4 presigned URL, written from AWS's specification, not botocore.

moto (the test S3 endpoint) does not verify query-string signatures, so this is
what shows that the URL's signature binds the request headers: an endpoint
that verifies signatures computes exactly this and refuses a mismatch.
https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import parse_qsl, quote, urlsplit


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def expected_signature(url: str, method: str, headers: dict[str, str], secret_key: str) -> str:
    """The signature a verifying endpoint computes for ``method url`` sent with ``headers``."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "X-Amz-Signature"]
    params = dict(query)
    signed = params["X-Amz-SignedHeaders"].split(";")
    lowered = {k.lower(): v.strip() for k, v in {**headers, "host": parts.netloc}.items()}
    canonical_headers = "".join(f"{name}:{lowered.get(name, '')}\n" for name in signed)
    canonical_query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(query))
    canonical_request = "\n".join(
        [method, parts.path, canonical_query, canonical_headers, ";".join(signed), "UNSIGNED-PAYLOAD"]
    )
    date, region, service, terminal = params["X-Amz-Credential"].split("/")[1:]
    scope = f"{date}/{region}/{service}/{terminal}"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", params["X-Amz-Date"], scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    key = _hmac(_hmac(_hmac(_hmac(f"AWS4{secret_key}".encode(), date), region), service), terminal)
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def signature_of(url: str) -> str:
    return dict(parse_qsl(urlsplit(url).query))["X-Amz-Signature"]
