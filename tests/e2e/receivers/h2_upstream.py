"""An HTTP/2 upstream (cleartext, prior knowledge) that ends every answer with trailers, as
gRPC-style and some HTTP/2 servers do: the chat-completions JSON in DATA frames, then a
HEADERS frame with `x-upstream-trailer: done` and END_STREAM, so the body never ends by
itself. Each request it got (headers, body, trailers) is appended as a JSON line to the file
named by the second argument.

  header x-mock-reply: the text the model "answers"
"""

import json
import socket
import sys
import threading

import h2.config
import h2.connection
import h2.events


def answer(text, model):
    return json.dumps({
        "id": "chatcmpl-h2", "object": "chat.completion", "model": model,
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25},
    }).encode()


def serve(sock, log_path):
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    streams = {}
    while True:
        try:
            data = sock.recv(65535)
        except OSError:
            return
        if not data:
            return
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.RequestReceived):
                streams[ev.stream_id] = {"headers": dict(ev.headers), "body": b"", "trailers": None}
            elif isinstance(ev, h2.events.DataReceived):
                streams[ev.stream_id]["body"] += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.TrailersReceived):
                streams[ev.stream_id]["trailers"] = dict(ev.headers)
            elif isinstance(ev, h2.events.StreamEnded):
                req = streams.pop(ev.stream_id)
                with open(log_path, "a") as f:
                    f.write(json.dumps({"headers": req["headers"], "body": req["body"].decode("utf-8", "replace"),
                                        "trailers": req["trailers"]}) + "\n")
                try:
                    model = json.loads(req["body"]).get("model", "mock-model")
                except ValueError:
                    model = "mock-model"
                body = answer(req["headers"].get("x-mock-reply", "This is a mock answer."), model)
                conn.send_headers(ev.stream_id, [(":status", "200"), ("content-type", "application/json")])
                conn.send_data(ev.stream_id, body)
                conn.send_headers(ev.stream_id, [("x-upstream-trailer", "done")], end_stream=True)
            elif isinstance(ev, h2.events.ConnectionTerminated):
                sock.sendall(conn.data_to_send())
                return
        sock.sendall(conn.data_to_send())


def main():
    port, log_path = int(sys.argv[1]), sys.argv[2]
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(16)
    print(f"h2 upstream listening on 127.0.0.1:{port}", flush=True)
    while True:
        sock, _ = listener.accept()
        threading.Thread(target=serve, args=(sock, log_path), daemon=True).start()


if __name__ == "__main__":
    main()
