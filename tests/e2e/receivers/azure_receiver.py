"""A strict Azure Monitor Logs Ingestion API receiver plus a Microsoft Entra ID token endpoint
and an IMDS managed-identity endpoint, on one port. Written from Microsoft's documentation
("Logs Ingestion API in Azure Monitor", "Azure Monitor service limits" (Logs Ingestion API
table), "Tutorial: Send data to Azure Monitor Logs with Logs Ingestion API" (Troubleshooting),
"Microsoft identity platform and the OAuth 2.0 client credentials flow", "Microsoft Entra
authentication and authorization error codes", "How to use managed identities for Azure
resources on an Azure VM to acquire an access token"), not from Policy Gateway's output.

Token  POST /<tenant>/oauth2/v2.0/token (form) -> Entra error body {"error", "error_description":
"AADSTSnnn: ...", "error_codes": [n], "timestamp", "trace_id", "correlation_id", "error_uri"}:
  400 invalid_request AADSTS90002     tenant is not TENANT
  400 invalid_request AADSTS900144    grant_type/client_id/scope missing (or body not a form)
  400 unsupported_grant_type AADSTS70003  grant_type is not client_credentials
  400 unauthorized_client AADSTS700016    unknown client_id (Entra answers 400, not 401)
  401 invalid_client AADSTS7000218 / AADSTS7000215   client_secret missing / wrong
  400 invalid_scope AADSTS1002012     scope without the "/.default" suffix
  400 invalid_scope AADSTS70011       any scope but https://monitor.azure.com/.default
  200 {"token_type":"Bearer","expires_in":TTL,"ext_expires_in":TTL,"access_token":opaque}
IMDS   GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://monitor.azure.com
  400 invalid_request "Required metadata header not specified"   (no "Metadata: true")
  400 invalid_request "Required query variable '<api-version|resource>' is missing"
  400 invalid_resource AADSTS500011   resource other than https://monitor.azure.com[/]
  200 {"access_token","client_id","expires_in":"TTL","expires_on":"<epoch>","ext_expires_in",
       "not_before","resource","token_type":"Bearer"}   (numbers as strings, as IMDS does)
Ingest POST /dataCollectionRules/<dcr>/streams/<stream>?api-version=2023-01-01
  (error body {"error": {"code", "message"}}, the shape the Azure SDK troubleshooting guides show;
  the codes themselves are not documented, the statuses are where noted)
  401 InvalidToken / TokenExpired     no bearer, a token this receiver did not issue, or expired
  400 MissingApiVersionParameter / InvalidApiVersion   (2021-11-01-preview is also accepted,
                                      as the service documents both; /_requests records it)
  404 NotFound                        DCR is not DCR
  400 InvalidStream                   stream is not STREAM
  415 UnsupportedMediaType            content-type not application/json (docs: required)
  400 InvalidContentEncoding          content-encoding gzip over a non-gzip body, or not gzip
  413 PayloadTooLarge                 body over 1 MB compressed or uncompressed (documented 413)
  400 InvalidPayload                  not JSON, not an array, an element not an object. The real
                                      service answers 204 and drops a non-array body (azure-sdk
                                      issue 32562); rejected here so a test cannot miss it.
  400 InvalidPayload                  TimeGenerated missing or not an ISO 8601 datetime string.
                                      The real API accepts the call and the DCR transform drops
                                      the row; rejected here for strictness.
  204 (no body)                       accepted.
  Not rejected, as documented: a field value over 64 KB is truncated (stored row carries
  "_truncated": [field names]).

Test controls:
  POST /_fail {"status": 429, "count": 1, "retry_after": 5}  next N ingest posts get this
        status (Retry-After set on 429/503 when retry_after is given)
  POST /_hang {"count": 1}              never answer the next N ingest posts
  POST /_revoke                         every token issued so far is refused from now on (401
        InvalidToken), as after a credential rotation or a revoked consent
  POST /_token_ttl {"seconds": N}       expires_in for tokens issued from now on (also argv[2]
        or AZURE_RECEIVER_TOKEN_TTL); GET /_tokens -> {"issued", "client_credentials", "imds"}
  GET  /_events                         accepted rows;  GET /_requests  every request
"""

import datetime, json, os, secrets, sys, threading, time, uuid, zlib
from http.server import ThreadingHTTPServer

from common import ReceiverHandler
from urllib.parse import parse_qs, urlsplit

TENANT = "72f988bf-0000-0000-0000-000000000001"
CLIENT_ID = "pg-client"
CLIENT_SECRET = "pg-secret"
DCR = "dcr-00000000000000000000000000000001"
STREAM = "Custom-PolicyGatewayAudit_CL"
RESOURCE = "https://monitor.azure.com"
API_VERSIONS = ("2023-01-01", "2021-11-01-preview")
MAX_BODY = 1024 * 1024
MAX_FIELD = 64 * 1024
TTL = {"seconds": int(sys.argv[2]) if len(sys.argv) > 2 else int(os.environ.get("AZURE_RECEIVER_TOKEN_TTL", "3599"))}
TOKENS, EVENTS, REQUESTS = {}, [], []
COUNTS = {"issued": 0, "client_credentials": 0, "imds": 0}
FAIL = {"status": 0, "count": 0, "retry_after": None}
HANG = {"count": 0}
LOCK = threading.Lock()


class Reject(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def entra_error(status, error, code, message):
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    trace, corr = str(uuid.uuid4()), str(uuid.uuid4())
    return status, {"error": error, "error_description": f"AADSTS{code}: {message}\r\nTrace ID: {trace}"
                    f"\r\nCorrelation ID: {corr}\r\nTimestamp: {now}", "error_codes": [code],
                    "timestamp": now, "trace_id": trace, "correlation_id": corr,
                    "error_uri": f"https://login.microsoftonline.com/error?code={code}"}


def issue(kind):
    token = secrets.token_urlsafe(48)
    with LOCK:
        ttl = TTL["seconds"]
        TOKENS[token] = {"exp": time.time() + ttl, "aud": RESOURCE}
        COUNTS["issued"] += 1
        COUNTS[kind] += 1
    return token, ttl


def token_endpoint(tenant, headers, body):
    if tenant != TENANT:
        return entra_error(400, "invalid_request", 90002, f"Tenant '{tenant}' not found. Check to make sure"
                           " you have the correct tenant ID and are signing into the correct cloud.")
    form = {}
    if headers.get("content-type", "").split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
    for p in ("grant_type", "client_id", "scope"):
        if not form.get(p):
            return entra_error(400, "invalid_request", 900144,
                               f"The request body must contain the following parameter: '{p}'.")
    if form["grant_type"] != "client_credentials":
        return entra_error(400, "unsupported_grant_type", 70003,
                           f"The app requested an unsupported grant type '{form['grant_type']}'.")
    if form["client_id"] != CLIENT_ID:
        return entra_error(400, "unauthorized_client", 700016, f"Application with identifier "
                           f"'{form['client_id']}' was not found in the directory '{TENANT}'.")
    if not form.get("client_secret"):
        return entra_error(401, "invalid_client", 7000218, "The request body must contain the following "
                           "parameter: 'client_assertion' or 'client_secret'.")
    if form["client_secret"] != CLIENT_SECRET:
        return entra_error(401, "invalid_client", 7000215, "Invalid client secret provided. Ensure the "
                           "secret being sent in the request is the client secret value, not the client "
                           f"secret ID, for a secret added to app '{CLIENT_ID}'.")
    scope = form["scope"]
    if not scope.endswith("/.default"):
        return entra_error(400, "invalid_scope", 1002012, f"The provided value for scope {scope} is not valid."
                           " Client credential flows must have a scope value with /.default suffixed to"
                           " the resource identifier (application ID URI).")
    if scope.rstrip("/").removesuffix("/.default").rstrip("/") != RESOURCE:
        return entra_error(400, "invalid_scope", 70011, "The provided value for the input parameter "
                           f"'scope' is not valid. The scope {scope} is not valid.")
    token, ttl = issue("client_credentials")
    return 200, {"token_type": "Bearer", "expires_in": ttl, "ext_expires_in": ttl, "access_token": token}


def imds_endpoint(query, headers):
    if headers.get("metadata", "").lower() != "true":
        return 400, {"error": "invalid_request", "error_description": "Required metadata header not specified"}
    for p in ("api-version", "resource"):
        if not query.get(p):
            return 400, {"error": "invalid_request", "error_description": f"Required query variable '{p}' is missing"}
    if query["resource"].rstrip("/") != RESOURCE:
        return 400, {"error": "invalid_resource", "error_description": f"AADSTS500011: The resource principal "
                     f"named {query['resource']} was not found in the tenant named {TENANT}."}
    token, ttl = issue("imds")
    now = int(time.time())
    return 200, {"access_token": token, "client_id": str(uuid.uuid5(uuid.NAMESPACE_URL, CLIENT_ID)),
                 "expires_in": str(ttl), "expires_on": str(now + ttl), "ext_expires_in": str(ttl),
                 "not_before": str(now), "resource": query["resource"], "token_type": "Bearer"}


def is_datetime(v):
    if not isinstance(v, str) or not ("T" in v or " " in v):
        return False
    try:
        date, _, rest = v.replace("Z", "+00:00").partition(".")   # allow 7-digit .NET fractions
        if rest:
            digits = len(rest) - len(rest.lstrip("0123456789"))
            v = date + "." + rest[:min(digits, 6)].ljust(6, "0") + rest[digits:]
        else:
            v = date
        datetime.datetime.fromisoformat(v)
        return True
    except ValueError:
        return False


def ingest(path, query, headers, raw):
    """Returns the rows to store, or raises Reject."""
    auth = headers.get("authorization", "")
    if not auth.lower().startswith("bearer ") or not auth[7:].strip():
        raise Reject(401, "InvalidToken", "Authorization header with a Bearer token is required.")
    info = TOKENS.get(auth[7:].strip())
    if info is None:
        raise Reject(401, "InvalidToken", "The provided access token is invalid.")
    if time.time() >= info["exp"]:
        raise Reject(401, "TokenExpired", "The provided access token has expired.")
    version = query.get("api-version")
    if not version:
        raise Reject(400, "MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required.")
    if version not in API_VERSIONS:
        raise Reject(400, "InvalidApiVersion", f"The api-version '{version}' is invalid. The supported "
                     f"versions are '{','.join(API_VERSIONS)}'.")
    parts = path.strip("/").split("/")
    if parts[1] != DCR:
        raise Reject(404, "NotFound", f"Data collection rule with immutable Id '{parts[1]}' not found.")
    if parts[3] != STREAM:
        raise Reject(400, "InvalidStream", f"Stream '{parts[3]}' is not declared in data collection rule '{DCR}'.")
    if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise Reject(415, "UnsupportedMediaType", "Content-Type must be application/json.")
    if len(raw) > MAX_BODY:
        raise Reject(413, "PayloadTooLarge", f"Request body exceeds the limit of {MAX_BODY} bytes.")
    enc = (headers.get("content-encoding") or "identity").strip().lower()
    body = raw
    if enc == "gzip":
        try:
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            body = d.decompress(raw, MAX_BODY + 1)
            if len(body) <= MAX_BODY and not d.eof:
                raise zlib.error("truncated")
        except zlib.error:
            raise Reject(400, "InvalidContentEncoding", "The request body is not valid gzip.")
    elif enc != "identity":
        raise Reject(400, "InvalidContentEncoding", f"Content-Encoding '{enc}' is not supported; use gzip.")
    if len(body) > MAX_BODY:
        raise Reject(413, "PayloadTooLarge", f"Uncompressed body exceeds the limit of {MAX_BODY} bytes.")
    try:
        data = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise Reject(400, "InvalidPayload", "The request body is not valid UTF-8 JSON.")
    if not isinstance(data, list):
        raise Reject(400, "InvalidPayload", "The request body must be a JSON array of objects.")
    rows = []
    for i, row in enumerate(data):
        if not isinstance(row, dict):
            raise Reject(400, "InvalidPayload", f"Element {i} is not a JSON object.")
        if not is_datetime(row.get("TimeGenerated")):
            raise Reject(400, "InvalidPayload", f"Element {i}: TimeGenerated must be an ISO 8601 datetime string.")
        row, cut = dict(row), []
        for k, v in row.items():
            text = v if isinstance(v, str) else json.dumps(v)
            if len(text.encode()) > MAX_FIELD:
                row[k] = text.encode()[:MAX_FIELD].decode("utf-8", "ignore")
                cut.append(k)
        if cut:
            row["_truncated"] = cut
        rows.append(row)
    return rows


class Handler(ReceiverHandler):
    def _send(self, status, body=None, headers=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("content-type", "application/json; charset=utf-8")
        self.send_header("content-length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _record(self, kind, status, **extra):
        headers = {k.lower(): v for k, v in self.headers.items()}
        if "authorization" in headers:
            headers["authorization"] = headers["authorization"][:7] + "***"
        REQUESTS.append({"kind": kind, "path": self.path, "status": status, "headers": headers,
                         "time": time.time(), **extra})

    def do_GET(self):
        url = urlsplit(self.path)
        with LOCK:
            if url.path in ("/_events", "/_requests", "/_tokens"):
                return self._send(200, {"/_events": EVENTS, "/_requests": REQUESTS, "/_tokens": COUNTS}[url.path])
        if url.path == "/metadata/identity/oauth2/token":
            status, body = imds_endpoint({k: v[0] for k, v in parse_qs(url.query).items()},
                                         {k.lower(): v for k, v in self.headers.items()})
            with LOCK:
                self._record("imds", status)
            return self._send(status, body)
        self._send(404, {"error": {"code": "NotFound", "message": "Resource not found."}})

    def do_POST(self):
        raw = self._body()
        url = urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        headers = {k.lower(): v for k, v in self.headers.items()}
        if url.path in ("/_fail", "/_hang", "/_token_ttl", "/_revoke"):
            cfg = json.loads(raw or b"{}")
            with LOCK:
                if url.path == "/_revoke":
                    TOKENS.clear()
                elif url.path == "/_fail":
                    FAIL.update(status=cfg.get("status", 503), count=cfg.get("count", 1),
                                retry_after=cfg.get("retry_after"))
                elif url.path == "/_hang":
                    HANG.update(count=cfg.get("count", 1))
                else:
                    TTL["seconds"] = int(cfg.get("seconds", 3599))
            return self._send(200, {"ok": True})
        if len(parts) == 4 and parts[1:] == ["oauth2", "v2.0", "token"]:
            status, body = token_endpoint(parts[0], headers, raw)
            with LOCK:
                self._record("token", status)
            return self._send(status, body)
        if not (len(parts) == 4 and parts[0] == "dataCollectionRules" and parts[2] == "streams"):
            return self._send(404, {"error": {"code": "NotFound", "message": "Resource not found."}})
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        status, err, rows, extra = 204, None, [], {}
        try:
            rows = ingest(url.path, query, headers, raw)
        except Reject as r:
            status, err = r.status, {"error": {"code": r.code, "message": r.message}}
        with LOCK:
            hang = HANG["count"] > 0
            if hang:
                HANG["count"] -= 1
            elif status == 204 and FAIL["count"] > 0:
                FAIL["count"] -= 1
                status = FAIL["status"]
                err = {"error": {"code": "TooManyRequests" if status == 429 else "ServiceUnavailable",
                                 "message": "Injected failure."}}
                if FAIL["retry_after"] is not None and status in (429, 503):
                    extra["Retry-After"] = str(FAIL["retry_after"])
            self._record("ingest", 0 if hang else status, rows=len(rows), api_version=query.get("api-version"),
                         error=err and err["error"]["code"])
            if status == 204 and not hang:
                EVENTS.extend(rows)
        if hang:
            time.sleep(3600)
            return
        self._send(status, err, extra)


def main():
    port = int(sys.argv[1])
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print(f"Azure receiver listening on 127.0.0.1:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
