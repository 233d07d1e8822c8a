"""A forwarding proxy that loses answers, as a network can: every request goes on to the target
and is served there, but the answers to the first N requests with a given method never come
back (the connection stays silent until the client gives up). For the test that a retried S3
upload whose answer was lost is not stored twice.

usage: lossy_proxy.py PORT TARGET_PORT METHOD N
Test controls: GET /_log -> [{"method", "path", "status", "withheld"}] (paths without query)
"""

import http.client
import json
import sys
import threading
import time
from http.server import ThreadingHTTPServer

from common import ReceiverHandler

LOG, LOCK = [], threading.Lock()
STATE = {"target": 0, "method": "PUT", "withhold": 0}


class Handler(ReceiverHandler):
    def _forward(self):
        if self.command == "GET" and self.path == "/_log":
            with LOCK:
                data = json.dumps(LOG).encode()
            self.send_response(200)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        body = self._body()
        headers = {k: v for k, v in self.headers.items() if k.lower() != "transfer-encoding"}
        headers["content-length"] = str(len(body))
        conn = http.client.HTTPConnection("127.0.0.1", STATE["target"], timeout=10)
        conn.request(self.command, self.path, body=body, headers=headers)
        r = conn.getresponse()
        data = r.read()
        with LOCK:
            withhold = self.command == STATE["method"] and STATE["withhold"] > 0
            if withhold:
                STATE["withhold"] -= 1
            LOG.append({"method": self.command, "path": self.path.split("?")[0], "status": r.status,
                        "withheld": withhold})
        if withhold:
            time.sleep(5)          # the client times out first; then the connection just closes
            self.close_connection = True
            return
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward


def main():
    port, STATE["target"], STATE["method"], STATE["withhold"] = (
        int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print(f"lossy proxy on 127.0.0.1:{port} -> {STATE['target']}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
