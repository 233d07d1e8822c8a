"""Reference presigner for policy-gateway's S3 audit sink.

The filter holds no AWS credentials: for each object it POSTs

    {"key": "<object key>", "content_type": "application/x-ndjson", "content_encoding": "gzip"}

here and gets back (200)

    {"url": "https://<bucket>.s3.<region>.amazonaws.com/<key>?X-Amz-Algorithm=...",
     "headers": {"content-type": "...", "content-encoding": "gzip", "if-none-match": "*"},
     "expires_at": <unix seconds>}

where "headers" are exactly the headers covered by the signature (X-Amz-SignedHeaders, less
host), to be sent with exactly these values. Errors: 400 bad request, 401 bad token, 403 key
outside the allowed prefix, 405/404 wrong method or path, 500 presigning failed.

Runs as a small HTTP server (`python3 presigner.py`) or as an AWS Lambda function
(`presigner.lambda_handler`, behind a Function URL or API Gateway HTTP API).

Environment:
  S3_BUCKET          bucket (required)
  AWS_REGION         the bucket's region (Lambda sets it)
  KEY_PREFIX         keys must start with this (default "policy-gateway/"; "" allows any)
  PRESIGN_EXPIRES    URL lifetime in seconds (default 900; at most 604800, and never longer
                     than the credentials of the role that signs)
  PRESIGNER_TOKEN    when set, requests need "Authorization: Bearer <token>"
  S3_IF_NONE_MATCH   "1" (default) signs "If-None-Match: *": a retried PUT of an object that
                     was already stored gets 412 instead of overwriting it (the filter counts
                     a 412 stored only when its own earlier attempt may have stored it)
  S3_ENDPOINT_URL    another S3 endpoint (local tests: s3s-fs, MinIO); path-style addressing
  HOST, PORT         listen address of the HTTP server (default 0.0.0.0:8080)
  PRESIGN_PATH       path served (default /presign)
"""

import base64
import hmac
import json
import os
import re
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import boto3
from botocore.config import Config

CONTENT_TYPES = {"application/x-ndjson"}
CONTENT_ENCODINGS = {"gzip"}
# S3's "safe characters" plus "/" and "=" (Hive partitions); no "..", no leading "/".
KEY_RE = re.compile(r"^[A-Za-z0-9!_.*'()=/-]{1,1024}$")

_client = None


def _env(name, default=None):
    value = os.environ.get(name)
    return default if value is None else value


def s3_client():
    global _client
    if _client is None:
        endpoint = _env("S3_ENDPOINT_URL") or None
        _client = boto3.client(
            "s3",
            region_name=_env("AWS_REGION") or _env("AWS_DEFAULT_REGION") or "us-east-1",
            endpoint_url=endpoint,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path" if endpoint else "virtual"},
            ),
        )
    return _client


def _authorized(authorization):
    token = _env("PRESIGNER_TOKEN", "")
    if not token:
        return True
    given = authorization or ""
    if not given.startswith("Bearer "):
        return False
    return hmac.compare_digest(given[len("Bearer "):].encode(), token.encode())


def handle(body, authorization=None):
    """The contract, independent of the transport: returns (status, JSON-able dict)."""
    if not _authorized(authorization):
        return 401, {"error": "unauthorized"}
    try:
        req = json.loads(body or b"")
    except ValueError:
        return 400, {"error": "body is not JSON"}
    if not isinstance(req, dict):
        return 400, {"error": "body is not a JSON object"}
    key = req.get("key")
    content_type = req.get("content_type")
    content_encoding = req.get("content_encoding")
    if not isinstance(key, str) or not KEY_RE.match(key) or ".." in key or key.startswith("/"):
        return 400, {"error": "bad key"}
    if content_type not in CONTENT_TYPES or content_encoding not in CONTENT_ENCODINGS:
        return 400, {"error": "unsupported content_type or content_encoding"}
    prefix = _env("KEY_PREFIX", "policy-gateway/")
    if not key.startswith(prefix):
        return 403, {"error": "key outside the allowed prefix"}
    bucket = _env("S3_BUCKET")
    if not bucket:
        return 500, {"error": "S3_BUCKET is not set"}
    expires = max(1, min(int(_env("PRESIGN_EXPIRES", "900")), 604800))

    values = {"content-type": content_type, "content-encoding": content_encoding}
    params = {
        "Bucket": bucket,
        "Key": key,
        "ContentType": content_type,
        "ContentEncoding": content_encoding,
    }
    if _env("S3_IF_NONE_MATCH", "1") == "1":
        params["IfNoneMatch"] = "*"
        values["if-none-match"] = "*"
    now = int(time.time())
    try:
        url = s3_client().generate_presigned_url(
            "put_object", Params=params, ExpiresIn=expires
        )
    except Exception as e:  # noqa: BLE001 - report the kind, never the credentials
        return 500, {"error": "presigning failed: %s" % type(e).__name__}

    # Report exactly what was signed: the signature fixes these headers and their values.
    query = parse_qs(urlsplit(url).query)
    signed = [h for h in query.get("X-Amz-SignedHeaders", [""])[0].split(";") if h]
    headers = {}
    for name in signed:
        if name == "host":
            continue
        if name not in values:
            return 500, {"error": "signed header %s has no known value" % name}
        headers[name] = values[name]
    return 200, {"url": url, "headers": headers, "expires_at": now + expires}


class Handler(BaseHTTPRequestHandler):
    server_version = "policy-gateway-presigner"

    def _reply(self, status, doc):
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):  # noqa: N802
        if self.path.split("?")[0] != _env("PRESIGN_PATH", "/presign"):
            return self._reply(404, {"error": "not found"})
        length = int(self.headers.get("content-length") or 0)
        if length > 4096:
            return self._reply(413, {"error": "body too large"})
        body = self.rfile.read(length)
        status, doc = handle(body, self.headers.get("authorization"))
        self._reply(status, doc)

    def do_GET(self):  # noqa: N802
        if self.path == "/healthz":
            return self._reply(200, {"ok": True})
        self._reply(405, {"error": "POST only"})


def lambda_handler(event, context):
    """AWS Lambda entry point (Function URL or API Gateway HTTP API, payload 2.0)."""
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body)
    elif isinstance(body, str):
        body = body.encode()
    status, doc = handle(body, headers.get("authorization"))
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(doc),
    }


def main():
    host = _env("HOST", "0.0.0.0")
    port = int(_env("PORT", "8080"))
    ThreadingHTTPServer((host, port), Handler).serve_forever()


if __name__ == "__main__":
    main()
