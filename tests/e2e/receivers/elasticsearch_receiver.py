"""A strict Elasticsearch _bulk receiver, written from Elastic's documentation ("Bulk API",
"Data streams" / "Use a data stream", "Index API" naming rules, "API key authentication",
the REST error format), not from Policy Gateway's output. Request-level rejections use ES's
{"error": {"root_cause": [...], "type", "reason"}, "status": N} body:

  401 security_exception "missing authentication credentials for REST request [...]"
        (no Authorization; WWW-Authenticate: Basic realm="security", ApiKey)
  401 security_exception "unable to authenticate user [..] / with provided credentials ..."
        (not ApiKey base64("pg:secret-key") nor Basic base64("elastic:changeme"))
  406 {"error":"Content-Type header [x] is not supported","status":406}
        (content-type not application/json or application/x-ndjson, charset allowed)
  400 parse_exception "request body is required"                     (empty body)
  400 illegal_argument_exception "The bulk request must be terminated by a newline [\\n]"
  400 illegal_argument_exception "Malformed action/metadata line [N], expected field [create],
        [delete], [index] or [update] but found [x]" (or: not an object / not one key)
  400 illegal_argument_exception "Action/metadata line [N] contains an unknown parameter [x]"
  400 action_request_validation_exception "Validation Failed: 1: index is missing;" (etc.)
  400 on gzip/deflate content-encoding over a body that is not
  404 unknown path

Item-level failures (HTTP 200, "errors": true, item {"status", "error": {"type","reason"}}):
  400 invalid_index_name_exception   bad index name (uppercase, bad chars, leading _-+, ...)
  400 illegal_argument_exception     index/update/delete on data stream DATA_STREAM
        "only write ops with an op_type of create are allowed in data streams"
  400 document_parsing_exception     source not a JSON object; data stream doc without
        "@timestamp" (or "timestamp", see TIMESTAMP_FIELDS; ES_STRICT_TIMESTAMP=1 makes it
        @timestamp only, as a cluster without an ingest pipeline would); unparseable date
  409 version_conflict_engine_exception  create with an _id already stored in that index
  404 document_missing_exception     update of a missing document
  429 es_rejected_execution_exception  injected with /_fail_items

Data stream writes are answered with the backing index name (.ds-policy-audit-YYYY.MM.DD-000001)
as ES does; /_events entries also carry "data_stream".

Test controls:
  POST /_fail {"status": 429, "count": 2, "retry_after": 1}  next N bulk posts get this status
  POST /_fail_items {"status": 429, "count": K}  next K items (across requests) fail
  POST /_hang {"count": 1}                   never answer the next N bulk posts
  GET  /_events                              stored documents with _index and _id
  GET  /_requests                            every bulk post: status, headers (auth masked)
"""

import base64, datetime, json, os, secrets, sys, threading, time, zlib
from http.server import ThreadingHTTPServer

from common import ReceiverHandler
from urllib.parse import urlsplit, unquote

API_KEY = ("pg", "secret-key")
BASIC = ("elastic", "changeme")
DATA_STREAM = "policy-audit"
TIMESTAMP_FIELDS = ("@timestamp",) if os.environ.get("ES_STRICT_TIMESTAMP") else ("@timestamp", "timestamp")
ACTIONS = ("create", "delete", "index", "update")
ACTION_PARAMS = {"_index", "_id", "routing", "_routing", "if_seq_no", "if_primary_term", "version",
                 "version_type", "pipeline", "require_alias", "require_data_stream", "op_type",
                 "retry_on_conflict", "_source", "dynamic_templates", "list_executed_pipelines"}
BAD_CHARS = set('\\/*?"<>| ,#:')
DOCS, EVENTS, REQUESTS = {}, [], []      # DOCS: {index: {id: (version, source)}}
FAIL = {"status": 0, "count": 0, "retry_after": None}
FAIL_ITEMS = {"status": 0, "count": 0}
HANG = {"count": 0}
LOCK = threading.Lock()
BACKING = f".ds-{DATA_STREAM}-{datetime.date.today():%Y.%m.%d}-000001"
FAIL_TYPES = {429: "es_rejected_execution_exception", 503: "master_not_discovered_exception",
              500: "exception", 502: "exception"}


class Reject(Exception):
    def __init__(self, status, etype, reason):
        super().__init__(reason)
        self.status, self.etype, self.reason = status, etype, reason


def es_error(status, etype, reason, **extra):
    cause = {"type": etype, "reason": reason, **extra}
    return {"error": {"root_cause": [cause], **cause}, "status": status}


def index_name_error(name):
    if name != name.lower():
        return f"Invalid index name [{name}], must be lowercase"
    if any(c in BAD_CHARS for c in name):
        return f"Invalid index name [{name}], must not contain the following characters " \
               "[' ','\"','*',',','/','<','>','?','\\','|',':','#']"
    if name[:1] in "_-+":
        return f"Invalid index name [{name}], must not start with '_', '-', or '+'"
    if name in (".", ".."):
        return f"Invalid index name [{name}], must not be '.' or '..'"
    if len(name.encode()) > 255:
        return f"Invalid index name [{name}], index name is too long"
    return None


def valid_date(v):
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return True
    if not isinstance(v, str):
        return False
    try:
        datetime.datetime.fromisoformat(v.replace("Z", "+00:00"))
        return True
    except ValueError:
        return v.isdigit()


def parse_bulk(body, url_index):
    """Splits the body into (action, meta, source|None, line_no) tuples, or raises Reject."""
    if not body:
        raise Reject(400, "parse_exception", "request body is required")
    if not body.endswith(b"\n"):
        raise Reject(400, "illegal_argument_exception",
                     "The bulk request must be terminated by a newline [\\n]")
    lines = body.decode("utf-8", "replace").split("\n")[:-1]
    ops, i = [], 0
    while i < len(lines):
        line, n = lines[i].rstrip("\r"), i + 1
        i += 1
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            raise Reject(400, "x_content_parse_exception", f"[{n}:1] Unexpected character in action/metadata line")
        if not isinstance(obj, dict) or len(obj) != 1:
            raise Reject(400, "illegal_argument_exception",
                         f"Malformed action/metadata line [{n}], expected START_OBJECT or END_OBJECT")
        action, meta = next(iter(obj.items()))
        if action not in ACTIONS:
            raise Reject(400, "illegal_argument_exception", f"Malformed action/metadata line [{n}], "
                         f"expected field [create], [delete], [index] or [update] but found [{action}]")
        if not isinstance(meta, dict):
            raise Reject(400, "illegal_argument_exception",
                         f"Malformed action/metadata line [{n}], expected START_OBJECT but found [{type(meta).__name__}]")
        for k in meta:
            if k not in ACTION_PARAMS:
                raise Reject(400, "illegal_argument_exception",
                             f"Action/metadata line [{n}] contains an unknown parameter [{k}]")
        if not (meta.get("_index") or url_index):
            raise Reject(400, "action_request_validation_exception", "Validation Failed: 1: index is missing;")
        if action in ("delete", "update") and not meta.get("_id"):
            raise Reject(400, "action_request_validation_exception", "Validation Failed: 1: id is missing;")
        source = None
        if action != "delete":
            if i >= len(lines):      # ES ignores a trailing action with no source line
                break
            source = lines[i].rstrip("\r")
            i += 1
        ops.append((action, meta, source, n))
    if not ops:
        raise Reject(400, "action_request_validation_exception", "Validation Failed: 1: no requests added;")
    return ops


def apply(action, meta, source, url_index):
    """Applies one op under LOCK; returns the item body."""
    index = meta.get("_index") or url_index
    doc_id = meta.get("_id") or base64.urlsafe_b64encode(secrets.token_bytes(15)).decode()
    item = {"_index": index, "_id": doc_id}

    def fail(status, etype, reason):
        item.update(status=status, error={"type": etype, "reason": reason, "index": index})
        return item

    if FAIL_ITEMS["count"] > 0:
        FAIL_ITEMS["count"] -= 1
        st = FAIL_ITEMS["status"]
        return fail(st, FAIL_TYPES.get(st, "exception"),
                    "rejected execution of coordinating operation [shard_detail=[" + index + "][0]]")
    bad = index_name_error(index)
    if bad:
        item["_id"] = meta.get("_id")
        item.update(status=400, error={"type": "invalid_index_name_exception", "reason": bad,
                                       "index_uuid": "_na_", "index": index})
        return item
    is_ds = index == DATA_STREAM
    if is_ds and not (action == "create" or (action == "index" and meta.get("op_type") == "create")):
        return fail(400, "illegal_argument_exception",
                    "only write ops with an op_type of create are allowed in data streams")
    doc = None
    if action != "delete":
        try:
            doc = json.loads(source)
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            return fail(400, "document_parsing_exception", "[1:1] failed to parse: source is not a JSON object")
    if is_ds:
        ts = next((f for f in TIMESTAMP_FIELDS if f in doc), None)
        if ts is None:
            return fail(400, "document_parsing_exception",
                        "[1:1] failed to parse: data stream timestamp field [@timestamp] is missing")
        if not valid_date(doc[ts]):
            return fail(400, "document_parsing_exception",
                        f"[1:1] failed to parse field [{ts}] of type [date] in document with id '{doc_id}'")
        item["_index"] = BACKING
    store = DOCS.setdefault(item["_index"], {})
    current = store.get(doc_id)
    create = action == "create" or meta.get("op_type") == "create"
    if create and current:
        item["_id"] = doc_id
        return fail(409, "version_conflict_engine_exception",
                    f"[{doc_id}]: version conflict, document already exists (current version [{current[0]}])")
    if action in ("update", "delete") and not current:
        if action == "update":
            return fail(404, "document_missing_exception", f"[{doc_id}]: document missing")
        item.update(_version=1, result="not_found", status=404)
        return item
    version = current[0] + 1 if current else 1
    if action == "delete":
        del store[doc_id]
        result, status = "deleted", 200
    else:
        if action == "update":
            doc = {**current[1], **(doc.get("doc") or {})}
        store[doc_id] = (version, doc)
        result, status = ("updated", 200) if current else ("created", 201)
        EVENTS.append({"_index": item["_index"], "_id": doc_id, "_version": version,
                       "data_stream": DATA_STREAM if is_ds else None, "_source": doc})
    item.update(_version=version, result=result, status=status,
                _shards={"total": 1, "successful": 1, "failed": 0}, _seq_no=len(EVENTS), _primary_term=1)
    return item


class Handler(ReceiverHandler):
    def _send(self, status, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("X-elastic-product", "Elasticsearch")
        self.send_header("content-length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _auth(self, path):
        auth = self.headers.get("authorization")
        if not auth:
            raise Reject(401, "security_exception", f"missing authentication credentials for REST request [{path}]")
        scheme, _, cred = auth.partition(" ")
        try:
            user, _, secret = base64.b64decode(cred.strip(), validate=True).decode().partition(":")
        except ValueError:
            user, secret = None, None
        if scheme.lower() == "apikey" and (user, secret) == API_KEY:
            return
        if scheme.lower() == "basic" and (user, secret) == BASIC:
            return
        who = f"user [{user}]" if scheme.lower() == "basic" else "with provided credentials"
        raise Reject(401, "security_exception", f"unable to authenticate {who} for REST request [{path}]")

    def do_GET(self):
        with LOCK:
            if self.path == "/_events":
                return self._send(200, EVENTS)
            if self.path == "/_requests":
                return self._send(200, REQUESTS)
        if urlsplit(self.path).path == "/":
            try:
                self._auth("/")
            except Reject as r:
                return self._send(401, es_error(401, r.etype, r.reason),
                                  {"WWW-Authenticate": 'Basic realm="security", charset="UTF-8", ApiKey'})
            return self._send(200, {"name": "receiver", "cluster_name": "e2e", "version": {
                "number": "8.13.0", "build_flavor": "default"}, "tagline": "You Know, for Search"})
        self._send(404, es_error(404, "index_not_found_exception", f"no such index [{self.path}]"))

    def do_POST(self):
        raw = self._body()
        path = urlsplit(self.path).path
        if path in ("/_fail", "/_hang", "/_fail_items"):
            cfg = json.loads(raw or b"{}")
            with LOCK:
                if path == "/_fail":
                    FAIL.update(status=cfg.get("status", 503), count=cfg.get("count", 1),
                                retry_after=cfg.get("retry_after"))
                elif path == "/_fail_items":
                    FAIL_ITEMS.update(status=cfg.get("status", 429), count=cfg.get("count", 1))
                else:
                    HANG.update(count=cfg.get("count", 1))
            return self._send(200, {"ok": True})
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts == ["_bulk"]:
            url_index = None
        elif len(parts) == 2 and parts[1] == "_bulk":
            url_index = parts[0]
        else:
            return self._send(404, es_error(404, "index_not_found_exception", f"no such index [{path}]"))
        status, body, extra, ops, started = 200, None, {}, [], time.time()
        try:
            self._auth(path)
            ctype = self.headers.get("content-type", "")
            if ctype.split(";")[0].strip().lower() not in ("application/json", "application/x-ndjson"):
                status, body = 406, {"error": f"Content-Type header [{ctype}] is not supported", "status": 406}
            else:
                enc = (self.headers.get("content-encoding") or "identity").lower()
                if enc in ("gzip", "deflate"):
                    try:
                        raw = zlib.decompress(raw, 16 + zlib.MAX_WBITS if enc == "gzip" else zlib.MAX_WBITS)
                    except zlib.error:
                        raise Reject(400, "illegal_argument_exception", f"request body is not valid {enc}")
                elif enc != "identity":
                    raise Reject(400, "illegal_argument_exception", f"unsupported content encoding [{enc}]")
                ops = parse_bulk(raw, url_index)
        except Reject as r:
            status = r.status
            body = es_error(r.status, r.etype, r.reason)
            if r.status == 401:
                extra["WWW-Authenticate"] = 'Basic realm="security", charset="UTF-8", ApiKey'
        with LOCK:
            hang = HANG["count"] > 0
            if hang:
                HANG["count"] -= 1
            elif status == 200 and FAIL["count"] > 0:
                FAIL["count"] -= 1
                status = FAIL["status"]
                body = es_error(status, FAIL_TYPES.get(status, "exception"), "injected failure")
                if FAIL["retry_after"] is not None and status in (429, 503):
                    extra["Retry-After"] = str(FAIL["retry_after"])
            if status == 200 and not hang:
                items = [{"create" if m.get("op_type") == "create" else a: apply(a, m, s, url_index)}
                         for a, m, s, _ in ops]
                errors = any("error" in next(iter(it.values())) for it in items)
                body = {"took": int((time.time() - started) * 1000), "errors": errors, "items": items}
            headers = {k.lower(): v for k, v in self.headers.items()}
            if "authorization" in headers:
                headers["authorization"] = headers["authorization"].split(" ")[0] + " ***"
            REQUESTS.append({"status": 0 if hang else status, "ops": len(ops), "path": path,
                             "errors": bool(body and body.get("errors")),
                             "headers": headers, "time": time.time()})
        if hang:
            time.sleep(3600)
            return
        self._send(status, body, extra)

    do_PUT = do_POST


def main():
    port = int(sys.argv[1])
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print(f"Elasticsearch receiver listening on 127.0.0.1:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
