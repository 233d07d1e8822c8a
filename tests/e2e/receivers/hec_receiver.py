"""A strict Splunk HTTP Event Collector receiver, written from Splunk's documentation
("Format events for HTTP Event Collector", "HTTP Event Collector status codes"), not from
Policy Gateway's output. It rejects what a real collector rejects:

  401 code 2  Token is required           (no Authorization header)
  401 code 3  Invalid authorization       (not "Splunk <token>")
  403 code 4  Invalid token
  400 code 5  No data
  400 code 6  Invalid data format         (not a sequence of JSON objects, bad "time")
  400 code 7  Incorrect index             (index not in the allowed list)
  400 code 12 Event field is required
  400 code 13 Event field cannot be blank
  400 code 6  Invalid data format         (content-encoding gzip over a body that is not gzip)
  400 code 10 Data channel is missing     (ack-enabled token without X-Splunk-Request-Channel)
  404         unknown path
Indexer acknowledgement ("About HTTP Event Collector Indexer Acknowledgment"): a post with a
channel gets {"text":"Success","code":0,"ackId":N}; POST /services/collector/ack
{"acks":[N,...]} (token and channel required) answers {"acks":{"N":bool}}: false on the first
poll of an ack, true afterwards (indexing takes a moment), and false while /_ack_hold holds.
  (gzip request bodies are accepted, as HEC documents)
  200 {"text":"Success","code":0}

Test controls:
  POST /_fail {"status": 503, "count": 3}   answer the next N event posts with this status
  POST /_hang {"count": 1}                   never answer the next N event posts
  POST /_latin1 {"name": "x-note"}          add this header, value not UTF-8, to every answer
  GET  /_events                              accepted events (envelopes), in order
  GET  /_requests                            every event post: status, headers (token masked)
"""

import gzip
import json
import sys
import zlib
import threading
import time
from http.server import ThreadingHTTPServer

from common import ReceiverHandler

TOKEN = "00000000-0000-4000-8000-000000000001"
# A token with indexer acknowledgement enabled: posts need X-Splunk-Request-Channel.
ACK_TOKEN = "00000000-0000-4000-8000-0000000000ac"
ALLOWED_INDEXES = {"main", "ai_audit"}
EVENTS, REQUESTS = [], []
FAIL = {"status": 0, "count": 0}
HANG = {"count": 0}
LATIN1 = []        # header names answered with a non-UTF-8 value
ACKS = {}          # (channel, ack id) -> polls so far
NEXT_ACK = {}      # channel -> next ack id
ACK_HOLD = {"on": False}  # POST /_ack_hold {"hold": bool}: every poll answers false meanwhile
LOCK = threading.Lock()

CODES = {
    0: "Success", 10: "Data channel is missing", 2: "Token is required", 3: "Invalid authorization", 4: "Invalid token",
    5: "No data", 6: "Invalid data format", 7: "Incorrect index", 9: "Server is busy",
    12: "Event field is required", 13: "Event field cannot be blank",
}


def parse_envelopes(text):
    """Concatenated JSON objects, optionally separated by whitespace."""
    decoder = json.JSONDecoder()
    pos, out = 0, []
    while True:
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        if pos == len(text):
            return out
        obj, pos = decoder.raw_decode(text, pos)
        out.append(obj)


def check(envelopes):
    """Returns (status, code) for a batch, as the collector would."""
    for env in envelopes:
        if not isinstance(env, dict):
            return 400, 6
        if "event" not in env:
            return 400, 12
        if env["event"] in ("", None, {}):
            return 400, 13
        if "time" in env:
            t = env["time"]
            if isinstance(t, bool) or not isinstance(t, (int, float, str)):
                return 400, 6
            try:
                float(t)
            except ValueError:
                return 400, 6
        for key in ("host", "source", "sourcetype", "index"):
            if key in env and not isinstance(env[key], str):
                return 400, 6
        if "index" in env and env["index"] not in ALLOWED_INDEXES:
            return 400, 7
        if "fields" in env and not isinstance(env["fields"], dict):
            return 400, 6
    return 200, 0


class Handler(ReceiverHandler):
    def _send(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for name in LATIN1:
            self.send_header(name, "caf\u00e9")  # latin-1 on the wire: byte 0xE9
        self.end_headers()
        self.wfile.write(data)

    def _code(self, status, code):
        self._send(status, {"text": CODES.get(code, "Error"), "code": code})

    def do_GET(self):
        with LOCK:
            if self.path == "/_events":
                return self._send(200, EVENTS)
            if self.path == "/_requests":
                return self._send(200, REQUESTS)
        if self.path == "/services/collector/health/1.0":
            return self._send(200, {"text": "HEC is healthy", "code": 17})
        self._send(404, {"text": "The requested URL was not found on this server.", "code": 404})

    def do_POST(self):
        body = self._body()
        if self.path == "/_latin1":
            LATIN1.append(json.loads(body)["name"])
            return self._send(200, {"ok": True})
        if self.path == "/_ack_hold":
            with LOCK:
                ACK_HOLD["on"] = bool(json.loads(body)["hold"])
            return self._send(200, {"ok": True})
        if self.path in ("/_fail", "/_hang"):
            cfg = json.loads(body or b"{}")
            with LOCK:
                if self.path == "/_fail":
                    FAIL.update(status=cfg.get("status", 503), count=cfg.get("count", 1))
                else:
                    HANG.update(count=cfg.get("count", 1))
            return self._send(200, {"ok": True})
        if self.path == "/services/collector/ack":
            return self._ack(body)
        if self.path not in ("/services/collector/event", "/services/collector/event/1.0",
                             "/services/collector"):
            return self._send(404, {"text": "The requested URL was not found on this server.", "code": 404})
        auth = self.headers.get("authorization")
        status, code = 200, 0
        if auth is None:
            status, code = 401, 2
        elif not auth.startswith("Splunk "):
            status, code = 401, 3
        elif auth[len("Splunk "):] not in (TOKEN, ACK_TOKEN):
            status, code = 403, 4
        elif auth[len("Splunk "):] == ACK_TOKEN and not self.headers.get("x-splunk-request-channel"):
            status, code = 400, 10
        elif not body.strip():
            status, code = 400, 5
        envelopes = []
        if status == 200 and self.headers.get("content-encoding", "").lower() == "gzip":
            try:
                body = gzip.decompress(body)
            except (OSError, EOFError, zlib.error):
                status, code = 400, 6
        if status == 200:
            try:
                envelopes = parse_envelopes(body.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                status, code = 400, 6
        if status == 200:
            status, code = check(envelopes)
        with LOCK:
            hang = HANG["count"] > 0
            if hang:
                HANG["count"] -= 1
            elif status == 200 and FAIL["count"] > 0:
                FAIL["count"] -= 1
                status, code = FAIL["status"], 9
            headers = {k.lower(): v for k, v in self.headers.items()}
            if "authorization" in headers:
                headers["authorization"] = headers["authorization"][:7] + "***"
            post = {"status": 0 if hang else status, "code": code, "events": len(envelopes),
                    "headers": headers, "time": time.time()}
            REQUESTS.append(post)
            if status == 200 and not hang:
                EVENTS.extend(envelopes)
        if hang:
            time.sleep(3600)
            return
        channel = self.headers.get("x-splunk-request-channel")
        if status == 200 and channel:
            with LOCK:
                ack_id = NEXT_ACK.get(channel, 0)
                NEXT_ACK[channel] = ack_id + 1
                ACKS[(channel, ack_id)] = 0
                post["ack_id"] = ack_id
            return self._send(200, {"text": "Success", "code": 0, "ackId": ack_id})
        self._code(status, code)

    def _ack(self, body):
        auth = self.headers.get("authorization", "")
        if not auth.startswith("Splunk ") or auth[len("Splunk "):] not in (TOKEN, ACK_TOKEN):
            return self._code(401, 3)
        channel = self.headers.get("x-splunk-request-channel")
        if not channel:
            return self._code(400, 10)
        try:
            ids = json.loads(body)["acks"]
        except (ValueError, KeyError, TypeError):
            return self._code(400, 6)
        out = {}
        with LOCK:
            for i in ids:
                polls = ACKS.get((channel, i))
                if polls is None:
                    out[str(i)] = False
                    continue
                out[str(i)] = polls >= 1 and not ACK_HOLD["on"]
                ACKS[(channel, i)] = polls + 1
            REQUESTS.append({"status": 200, "code": 0, "events": 0, "ack_poll": ids, "acks": out,
                             "time": time.time(), "headers": {"x-splunk-request-channel": channel}})
        self._send(200, {"acks": out})


def main():
    port = int(sys.argv[1])
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print(f"HEC receiver listening on 127.0.0.1:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
