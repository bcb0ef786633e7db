"""A loopback HTTP server for fetch tests. Prints its port on stdout, then serves:
  /bytes/N        N bytes of 'x' with Content-Length
  /chunked/N      N bytes of 'x', chunked (no Content-Length)
  /redirect/K     K redirects, then /bytes/10
  /to-ftp         a redirect to ftp://
  /redirect-to/H  a redirect to http://H/bytes/10 (H is host:port)
  /status/C       HTTP status C with a short body
  /slow           headers, then one byte per second for 60 s
Exits when stdin closes (the test's end), so it never outlives the test."""
import http.server
import socketserver
import sys
import threading
import time


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        parts = self.path.strip("/").split("/")
        if parts[0] == "bytes":
            n = int(parts[1])
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(n))
            self.end_headers()
            self.wfile.write(b"x" * n)
        elif parts[0] == "chunked":
            n = int(parts[1])
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            left = n
            while left > 0:
                k = min(left, 65536)
                self.wfile.write(b"%x\r\n" % k + b"x" * k + b"\r\n")
                left -= k
            self.wfile.write(b"0\r\n\r\n")
        elif parts[0] == "redirect":
            k = int(parts[1])
            self.send_response(302)
            self.send_header("Location", f"/redirect/{k - 1}" if k > 1 else "/bytes/10")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif parts[0] == "redirect-to":
            self.send_response(302)
            self.send_header("Location", f"http://{parts[1]}/bytes/10")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif parts[0] == "to-ftp":
            self.send_response(302)
            self.send_header("Location", "ftp://127.0.0.1/file")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif parts[0] == "status":
            self.send_response(int(parts[1]))
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"no")
        elif parts[0] == "slow":
            self.send_response(200)
            self.send_header("Content-Length", "60")
            self.end_headers()
            for _ in range(60):
                try:
                    self.wfile.write(b"x")
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(1)
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # clients hang up mid-response on purpose (timeouts, cancels)


srv = Server(("127.0.0.1", 0), Handler)
print(srv.server_address[1], flush=True)
threading.Thread(target=srv.serve_forever, daemon=True).start()
sys.stdin.read()
