"""A minimal HTTP/2 client (cleartext, prior knowledge) on the `h2` package, for what
urllib cannot do: request trailers, and reading response trailers."""

import socket

import h2.config
import h2.connection
import h2.events


def request(port, path, body=b"", headers=(), trailers=None, method="POST", timeout=15):
    """One request; returns (status, headers, body, trailers). Bodies must fit the default
    flow-control window (64 KiB)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        conn.initiate_connection()
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [(":method", method), (":path", path), (":authority", "127.0.0.1"),
                                (":scheme", "http"), *headers], end_stream=not body and not trailers)
        if body:
            conn.send_data(sid, body, end_stream=not trailers)
        if trailers:
            conn.send_headers(sid, list(trailers), end_stream=True)
        sock.sendall(conn.data_to_send())
        status, resp_headers, data, resp_trailers = None, {}, b"", {}
        while True:
            chunk = sock.recv(65535)
            if not chunk:
                raise ConnectionError("connection closed before the response ended")
            for ev in conn.receive_data(chunk):
                if isinstance(ev, h2.events.ResponseReceived):
                    resp_headers = dict(ev.headers)
                    status = int(resp_headers[":status"])
                elif isinstance(ev, h2.events.DataReceived):
                    data += ev.data
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.TrailersReceived):
                    resp_trailers = dict(ev.headers)
                elif isinstance(ev, h2.events.StreamReset):
                    raise ConnectionError(f"stream reset: {ev.error_code}")
                elif isinstance(ev, h2.events.StreamEnded):
                    return status, resp_headers, data, resp_trailers
            sock.sendall(conn.data_to_send())
    finally:
        sock.close()
