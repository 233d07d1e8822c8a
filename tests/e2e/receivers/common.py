"""What every local test receiver shares: HTTP/1.1 keep-alive, quiet logs, and request bodies
read as the services read them (content-length or chunked transfer encoding)."""

from http.server import BaseHTTPRequestHandler


class ReceiverHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _body(self):
        """The request body, de-chunked (chunk extensions and trailers skipped)."""
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("content-length") or 0))
