"""A mock OpenAI/Anthropic-compatible upstream for end-to-end tests and the demo.

It answers chat completions (/v1/chat/completions), responses (/v1/responses), completions,
embeddings and Anthropic messages (/v1/messages) with well-formed bodies, and records every
request body exactly as received so tests can check what the upstream saw.

Like the real APIs, a JSON answer is gzip-compressed when the request's accept-encoding
allows gzip (the default of Python requests and the OpenAI SDKs).

A request with `"stream": true` gets a server-sent event stream in the provider's format
(OpenAI chat chunks ending with `data: [DONE]`, Responses API typed events, Anthropic
message events), sent with chunked transfer encoding, one write per event unless told otherwise.

Test controls (never sent by real clients):
  header x-mock-reply: text the model "answers" (to exercise response-phase rules); `{prompt}`
                      in it stands for the last user text as this upstream received it
  header x-mock-chunk-chars: stream the reply in deltas of this many characters
  header x-mock-status: status code to answer with
  header x-mock-chunks: JSON list of the text deltas to stream (default: the reply, by word)
  header x-mock-repeat: stream the deltas this many times over (long streams)
  header x-mock-newline: lf | crlf | cr | mixed (alternating per event) event framing
  header x-mock-write-bytes: write the stream in socket writes of this many bytes instead
  header x-mock-abort-after: close the connection, mid-stream, after this many text deltas
  header x-mock-delay-ms: pause between events
  header x-mock-gzip: always (gzip whatever accept-encoding says: a misbehaving upstream)
  header x-mock-content-type: content-type of a JSON answer (the body stays the same)
  header x-mock-latin1-header: name of a response header to add with a non-UTF-8 value
  header x-mock-body-b64: answer exactly these bytes (base64), as a whole JSON body
  header x-mock-stream-b64: answer a stream of exactly these chunks (base64 of a JSON list
                            of strings), one chunked write each
  GET /_received         -> JSON list of {"path", "headers", "body"} (body as text)
  POST /_reset           -> forget received requests
"""

import base64
import gzip
import json
import sys
import threading
import time
from http.server import ThreadingHTTPServer

from common import ReceiverHandler

RECEIVED = []
LOCK = threading.Lock()


def reply_body(path, request, text):
    model = request.get("model", "mock-model") if isinstance(request, dict) else "mock-model"
    usage_in, usage_out = 20, max(1, len(text.split()))
    if path.endswith("/v1/messages"):
        return {
            "id": "msg_mock", "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
            "usage": {"input_tokens": usage_in, "output_tokens": usage_out},
        }
    if path.endswith("/v1/responses"):
        return {
            "id": "resp_mock", "object": "response", "model": model, "status": "completed",
            "output": [{"type": "message", "role": "assistant",
                        "content": [{"type": "output_text", "text": text}]}],
            "usage": {"input_tokens": usage_in, "output_tokens": usage_out,
                      "total_tokens": usage_in + usage_out},
        }
    if path.endswith("/v1/embeddings"):
        return {"object": "list", "model": model,
                "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}],
                "usage": {"prompt_tokens": usage_in, "total_tokens": usage_in}}
    if path.endswith("/v1/completions"):
        return {"id": "cmpl-mock", "object": "text_completion", "model": model,
                "choices": [{"index": 0, "text": text, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": usage_in, "completion_tokens": usage_out,
                          "total_tokens": usage_in + usage_out}}
    return {
        "id": "chatcmpl-mock", "object": "chat.completion", "model": model,
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": usage_in, "completion_tokens": usage_out,
                  "total_tokens": usage_in + usage_out},
    }


def stream_events(path, request, deltas):
    """(event name or None, data) pairs of a streamed answer; usage as each provider sends it."""
    model = request.get("model", "mock-model")
    out_tokens = max(1, len("".join(deltas).split()))
    if path.endswith("/v1/messages"):
        yield "message_start", {"type": "message_start", "message": {
            "id": "msg_mock", "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "usage": {"input_tokens": 20, "output_tokens": 1}}}
        yield "content_block_start", {"type": "content_block_start", "index": 0,
                                      "content_block": {"type": "text", "text": ""}}
        yield "ping", {"type": "ping"}
        for d in deltas:
            yield "content_block_delta", {"type": "content_block_delta", "index": 0,
                                          "delta": {"type": "text_delta", "text": d}}
        yield "content_block_stop", {"type": "content_block_stop", "index": 0}
        yield "message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                                "usage": {"output_tokens": out_tokens}}
        yield "message_stop", {"type": "message_stop"}
        return
    if path.endswith("/v1/responses"):
        seq = iter(range(1 << 30))
        resp = {"id": "resp_mock", "object": "response", "model": model, "status": "in_progress",
                "output": []}
        yield "response.created", {"type": "response.created", "sequence_number": next(seq),
                                   "response": resp}
        for d in deltas:
            yield "response.output_text.delta", {
                "type": "response.output_text.delta", "sequence_number": next(seq),
                "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": d,
                "logprobs": []}
        text = "".join(deltas)
        yield "response.output_text.done", {
            "type": "response.output_text.done", "sequence_number": next(seq), "item_id": "msg_1",
            "output_index": 0, "content_index": 0, "text": text, "logprobs": []}
        done = dict(resp, status="completed",
                    output=[{"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
                             "content": [{"type": "output_text", "text": text, "annotations": []}]}],
                    usage={"input_tokens": 20, "output_tokens": out_tokens,
                           "total_tokens": 20 + out_tokens})
        yield "response.completed", {"type": "response.completed", "sequence_number": next(seq),
                                     "response": done}
        return
    if path.endswith("/v1/completions"):
        for d in deltas:
            yield None, {"id": "cmpl-mock", "object": "text_completion", "created": 1764000000,
                         "model": model, "choices": [{"index": 0, "text": d, "finish_reason": None}]}
        yield None, "[DONE]"
        return
    chunk = {"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1764000000,
             "model": model}
    yield None, dict(chunk, choices=[{"index": 0, "delta": {"role": "assistant", "content": ""},
                                      "finish_reason": None}])
    for d in deltas:
        yield None, dict(chunk, choices=[{"index": 0, "delta": {"content": d}, "finish_reason": None}])
    yield None, dict(chunk, choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}])
    if (request.get("stream_options") or {}).get("include_usage"):
        yield None, dict(chunk, choices=[], usage={"prompt_tokens": 20, "completion_tokens": out_tokens,
                                                   "total_tokens": 20 + out_tokens})
    yield None, "[DONE]"


def frame(name, data, newline):
    text = data if isinstance(data, str) else json.dumps(data)
    head = f"event: {name}{newline}" if name else ""
    return f"{head}data: {text}{newline}{newline}".encode()


def prompt_of(request):
    """The last user text of a chat, Responses, Anthropic or completions request."""
    if not isinstance(request, dict):
        return ""
    if isinstance(request.get("input"), str):
        return request["input"]
    if isinstance(request.get("prompt"), str):
        return request["prompt"]
    for message in reversed(request.get("messages") or []):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return message["content"]
    return ""


def reply_text(headers, request):
    text = headers.get("x-mock-reply", "This is a mock answer.")
    return text.replace("{prompt}", prompt_of(request))


class Handler(ReceiverHandler):
    def _stream(self, request):
        h = self.headers
        text = reply_text(h, request)
        if h.get("x-mock-chunks"):
            deltas = json.loads(h["x-mock-chunks"])
        elif h.get("x-mock-chunk-chars"):
            n = int(h["x-mock-chunk-chars"])
            deltas = [text[i:i + n] for i in range(0, len(text), n)]
        else:
            words = text.split(" ")
            deltas = [w + " " for w in words[:-1]] + [words[-1]]
        deltas = deltas * int(h.get("x-mock-repeat", "1"))
        newline = h.get("x-mock-newline", "lf")
        write_bytes = int(h.get("x-mock-write-bytes", "0"))
        abort_after = int(h.get("x-mock-abort-after", "-1"))
        delay = int(h.get("x-mock-delay-ms", "0")) / 1000.0
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()

        def write(data):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        pending = b""
        sent_deltas = 0
        for n, (name, data) in enumerate(stream_events(self.path, request, deltas)):
            nl = {"lf": "\n", "crlf": "\r\n", "cr": "\r"}.get(newline) or ("\r\n" if n % 2 else "\n")
            event = frame(name, data, nl)
            if write_bytes:
                pending += event
                while len(pending) >= write_bytes:
                    write(pending[:write_bytes])
                    pending = pending[write_bytes:]
            else:
                write(event)
            is_delta = isinstance(data, dict) and (
                data.get("type") in ("content_block_delta", "response.output_text.delta")
                or any("content" in c.get("delta", {}) and c["delta"]["content"]
                       for c in data.get("choices", [])))
            sent_deltas += 1 if is_delta else 0
            if sent_deltas == abort_after:
                # Upstream dies mid-stream: no terminating chunk, connection reset.
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if delay:
                time.sleep(delay)
        if pending:
            write(pending)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _send(self, status, body, content_type="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/_received":
            with LOCK:
                return self._send(200, RECEIVED)
        if self.path.endswith("/v1/models"):
            return self._send(200, {"object": "list", "data": [{"id": "gpt-4o", "object": "model"}]})
        self._send(404, {"error": {"message": "not found"}})

    def do_POST(self):
        body = self._body()
        if self.path == "/_reset":
            with LOCK:
                RECEIVED.clear()
            return self._send(200, {"ok": True})
        with LOCK:
            RECEIVED.append({"path": self.path, "headers": dict(self.headers.items()),
                             "body": body.decode("utf-8", "replace")})
        try:
            request = json.loads(body)
        except ValueError:
            return self._send(400, {"error": {"message": "invalid JSON", "type": "invalid_request_error"}})
        if self.headers.get("x-mock-stream-b64"):
            chunks = json.loads(base64.b64decode(self.headers["x-mock-stream-b64"]))
            self.send_response(200)
            self.send_header("content-type", "text/event-stream; charset=utf-8")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for c in chunks:
                data = c.encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            return
        if self.headers.get("x-mock-body-b64"):
            return self._send(200, base64.b64decode(self.headers["x-mock-body-b64"]),
                              self.headers.get("x-mock-content-type", "application/json"))
        if isinstance(request, dict) and request.get("stream") is True \
                and "x-mock-status" not in self.headers:
            try:
                return self._stream(request)
            except (BrokenPipeError, ConnectionResetError):
                return
        status = int(self.headers.get("x-mock-status", "200"))
        text = reply_text(self.headers, request)
        data = json.dumps(reply_body(self.path, request, text)).encode()
        gz = self.headers.get("x-mock-gzip") == "always" or any(
            c.split(";")[0].strip().lower() == "gzip"
            for c in self.headers.get("accept-encoding", "").split(","))
        if gz:
            data = gzip.compress(data)
        self.send_response(status)
        self.send_header("content-type", self.headers.get("x-mock-content-type", "application/json"))
        self.send_header("content-length", str(len(data)))
        if gz:
            self.send_header("content-encoding", "gzip")
        if self.headers.get("x-mock-latin1-header"):
            # send_header writes latin-1: U+00E9 goes out as the single byte 0xE9.
            self.send_header(self.headers["x-mock-latin1-header"], "caf\u00e9")
        self.end_headers()
        self.wfile.write(data)


def main():
    port = int(sys.argv[1])
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"mock LLM listening on 127.0.0.1:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
