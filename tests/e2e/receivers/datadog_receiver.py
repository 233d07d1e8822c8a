"""A strict Datadog Logs API v2 intake receiver, written from Datadog's documentation
("Send logs" in the Logs API reference, the HTTPLogItem / HTTPLogErrors models of the
v2 API clients), not from Policy Gateway's output. It rejects what the real intake rejects:

  401 {"errors":[{"status":"401","title":"Unauthorized","detail":"API key is missing"}]}
                                     no DD-API-KEY header (the v2 reference lists 401 for
                                     "likely a missing API Key", 403 for an invalid one)
  403 {"errors":[{"status":"403","title":"Forbidden","detail":"API key is invalid"}]}
                                     DD-API-KEY is not API_KEY
  400 ... "title":"Bad Request"      empty or non-JSON body, body not an object or array,
                                     more than 1000 entries, an entry that is not an object,
                                     ddsource/ddtags/hostname/service/message not a string,
                                     content-encoding gzip/deflate over a body that isn't,
                                     an unknown content-encoding
  413 ... "title":"Payload Too Large" uncompressed payload over 5 MB
  404                                unknown path
  202 {}                             accepted

Not rejected, as the documentation says: an entry over 1 MB is truncated and accepted (the
stored copy carries "truncated": true and its message is cut to 1 MB). ddtags content is not
checked beyond being a string: Datadog tags may be "key:value" or a bare "value"; the parsed
list is stored as "_tags". A single JSON object body is one log.

Test controls:
  POST /_fail {"status": 503, "count": 3, "retry_after": 2}  next N intake posts get this status
  POST /_hang {"count": 1}                   never answer the next N intake posts
  GET  /_events                              accepted log entries, in order
  GET  /_requests                            every intake post: status, headers (key masked)
"""

import json
import sys
import threading
import time
import zlib
from http.server import ThreadingHTTPServer

from common import ReceiverHandler
from urllib.parse import urlsplit

API_KEY = "0123456789abcdef0123456789abcdef"
MAX_PAYLOAD = 5 * 1000 * 1000
MAX_ENTRY = 1000 * 1000
MAX_ENTRIES = 1000
STRING_FIELDS = ("ddsource", "ddtags", "hostname", "service", "message")
EVENTS, REQUESTS = [], []
FAIL = {"status": 0, "count": 0, "retry_after": None}
HANG = {"count": 0}
LOCK = threading.Lock()
TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
          408: "Request Timeout", 413: "Payload Too Large", 429: "Too Many Requests",
          500: "Internal Server Error", 503: "Service Unavailable"}


class Reject(Exception):
    def __init__(self, status, detail):
        super().__init__(detail)
        self.status, self.detail = status, detail


def decode_body(raw, encoding):
    """Decompress per content-encoding, never producing more than MAX_PAYLOAD + 1 bytes."""
    encoding = (encoding or "identity").strip().lower()
    if encoding == "identity":
        return raw
    if encoding not in ("gzip", "deflate"):
        raise Reject(400, f"Unsupported content encoding: {encoding}")
    attempts = [16 + zlib.MAX_WBITS] if encoding == "gzip" else [zlib.MAX_WBITS, -zlib.MAX_WBITS]
    for wbits in attempts:
        try:
            d = zlib.decompressobj(wbits)
            out = d.decompress(raw, MAX_PAYLOAD + 1)
            if len(out) <= MAX_PAYLOAD and not d.eof:
                raise zlib.error("truncated stream")
            return out
        except zlib.error:
            continue
    raise Reject(400, f"Malformed {encoding} payload")


def check(body):
    """Returns the list of entries to store, or raises Reject."""
    if len(body) > MAX_PAYLOAD:
        raise Reject(413, "Payload too large")
    if not body.strip():
        raise Reject(400, "Empty payload")
    try:
        data = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise Reject(400, "Malformed payload: not valid JSON")
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise Reject(400, "Malformed payload: expected a JSON object or array of objects")
    if len(data) > MAX_ENTRIES:
        raise Reject(400, f"Too many log entries: {len(data)} > {MAX_ENTRIES}")
    out = []
    for i, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise Reject(400, f"Malformed payload: entry {i} is not a JSON object")
        for key in STRING_FIELDS:
            if key in entry and not isinstance(entry[key], str):
                raise Reject(400, f"Malformed payload: entry {i} field '{key}' must be a string")
        stored = dict(entry)
        if "ddtags" in entry:
            stored["_tags"] = [t.strip() for t in entry["ddtags"].split(",") if t.strip()]
        size = len(json.dumps(entry, separators=(",", ":")).encode())
        if size > MAX_ENTRY:
            stored["truncated"] = True
            if isinstance(stored.get("message"), str):
                stored["message"] = stored["message"].encode()[:MAX_ENTRY].decode("utf-8", "ignore")
        out.append(stored)
    return out


class Handler(ReceiverHandler):
    def _send(self, status, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status, detail, headers=None):
        title = TITLES.get(status, "Error")
        self._send(status, {"errors": [{"status": str(status), "title": title, "detail": detail}]},
                   headers)

    def do_GET(self):
        with LOCK:
            if self.path == "/_events":
                return self._send(200, EVENTS)
            if self.path == "/_requests":
                return self._send(200, REQUESTS)
        self._error(404, "Not found")

    def do_POST(self):
        raw = self._body()
        path = urlsplit(self.path).path
        if path in ("/_fail", "/_hang"):
            cfg = json.loads(raw or b"{}")
            with LOCK:
                if path == "/_fail":
                    FAIL.update(status=cfg.get("status", 503), count=cfg.get("count", 1),
                                retry_after=cfg.get("retry_after"))
                else:
                    HANG.update(count=cfg.get("count", 1))
            return self._send(200, {"ok": True})
        if path != "/api/v2/logs":
            return self._error(404, "Not found")
        key = self.headers.get("dd-api-key")
        status, detail, entries, extra = 202, "", [], {}
        try:
            if key is None:
                raise Reject(401, "API key is missing")
            if key != API_KEY:
                raise Reject(403, "API key is invalid")
            entries = check(decode_body(raw, self.headers.get("content-encoding")))
        except Reject as r:
            status, detail = r.status, r.detail
        with LOCK:
            hang = HANG["count"] > 0
            if hang:
                HANG["count"] -= 1
            elif status == 202 and FAIL["count"] > 0:
                FAIL["count"] -= 1
                status, detail = FAIL["status"], "Injected failure"
                if FAIL["retry_after"] is not None and status in (429, 503):
                    extra["Retry-After"] = str(FAIL["retry_after"])
            headers = {k.lower(): v for k, v in self.headers.items()}
            if "dd-api-key" in headers:
                headers["dd-api-key"] = headers["dd-api-key"][:4] + "***"
            REQUESTS.append({"status": 0 if hang else status, "detail": detail,
                             "entries": len(entries), "bytes": len(raw),
                             "headers": headers, "time": time.time()})
            if status == 202 and not hang:
                EVENTS.extend(entries)
        if hang:
            time.sleep(3600)
            return
        if status == 202:
            return self._send(202, {})
        self._error(status, detail, extra)


def main():
    port = int(sys.argv[1])
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print(f"Datadog receiver listening on 127.0.0.1:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
