"""A mock OpenAI/Anthropic-compatible upstream for end-to-end tests and the demo.

It answers chat completions (/v1/chat/completions), responses (/v1/responses), completions,
embeddings and Anthropic messages (/v1/messages) with well-formed bodies, and records every
request body exactly as received so tests can check what the upstream saw.

Test controls (never sent by real clients):
  header x-mock-reply: text the model "answers" (to exercise response-phase rules)
  header x-mock-status: status code to answer with
  GET /_received         -> JSON list of {"path", "headers", "body"} (body as text)
  POST /_reset           -> forget received requests
"""

import json
import sys
import threading
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


class Handler(ReceiverHandler):
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
        status = int(self.headers.get("x-mock-status", "200"))
        text = self.headers.get("x-mock-reply", "This is a mock answer.")
        self._send(status, reply_body(self.path, request, text))


def main():
    port = int(sys.argv[1])
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"mock LLM listening on 127.0.0.1:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
