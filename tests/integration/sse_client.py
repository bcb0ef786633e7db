"""Test support for the live event routes: a raw-socket Server-Sent Events client
(chunked decoding and SSE parsing done here, so a test sees exactly what the server
sent and can also open a client that never reads), a pipelined XADD writer for the job
event stream (the format in EVENTS.md), and VmRSS of a process."""
import json
import socket
import time


def vm_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


# ---- writing the event stream ------------------------------------------------------------

def _resp_cmd(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class RedisPipe:
    """Commands to a Redis over one socket, pipelined; replies parsed (simple strings,
    errors, integers, bulk strings, arrays)."""

    def __init__(self, port, host="127.0.0.1"):
        self.s = socket.create_connection((host, port), timeout=30)
        self.buf = b""

    def close(self):
        self.s.close()

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError("redis: " + rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                chunk = self.s.recv(65536)
                if not chunk:
                    raise ConnectionError("redis closed the connection")
                self.buf += chunk
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data.decode()
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise RuntimeError(f"redis: unexpected reply {line!r}")

    def run(self, cmds):
        """Send every command (a tuple of arguments), then read every reply."""
        self.s.sendall(b"".join(_resp_cmd(*c) for c in cmds))
        return [self._reply() for _ in cmds]

    def xadd(self, key, events, entry_id="*"):
        """One stream entry holding events [(job_id, state, progress, queue, type)...];
        returns its id."""
        args = ["XADD", key, "MAXLEN", "~", "100000", entry_id]
        for job, state, progress, queue, type_ in events:
            args += [job, f"{state} {progress} {queue} {type_}"]
        return self.run([args])[0]


# ---- reading a stream --------------------------------------------------------------------

class SseParser:
    """Feed it the raw bytes after the response headers (chunked); it collects the
    events: dicts with "id", "event", "data" (parsed JSON when it is JSON), "retry" and
    "comments" (the comment lines of the block)."""

    def __init__(self, chunked=True):
        self.raw = b""
        self.text = b""
        self.chunked = chunked
        self.ended = False  # the last chunk came
        self.events = []
        self.received_at = []  # time.monotonic() when each event was complete

    def take(self, data):
        """Add data to the body text (decoding the chunks as they complete)."""
        self.raw += data
        if self.chunked:
            while not self.ended:
                nl = self.raw.find(b"\r\n")
                if nl < 0:
                    break
                size = int(self.raw[:nl].split(b";")[0], 16)
                if size == 0:
                    self.ended = True
                    break
                if len(self.raw) < nl + 2 + size + 2:
                    break
                self.text += self.raw[nl + 2:nl + 2 + size]
                self.raw = self.raw[nl + 2 + size + 2:]
        else:
            self.text += self.raw
            self.raw = b""

    def feed(self, data):
        self.take(data)
        now = time.monotonic()
        while b"\n\n" in self.text:
            block, self.text = self.text.split(b"\n\n", 1)
            ev = {"id": None, "event": None, "data": None, "retry": None, "comments": []}
            data = []
            for line in block.decode().split("\n"):
                if line.startswith(":"):
                    ev["comments"].append(line[1:].strip())
                    continue
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "data":
                    data.append(value)
                elif field in ("id", "event", "retry"):
                    ev[field] = value
            if data:
                d = "\n".join(data)
                try:
                    ev["data"] = json.loads(d)
                except ValueError:
                    ev["data"] = d
            self.events.append(ev)
            self.received_at.append(now)


def request_bytes(path, headers=None, token=None):
    h = {"Host": "x", "Accept": "text/event-stream"}
    if token:
        h["Authorization"] = "Bearer " + token
    h.update(headers or {})
    return (f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) +
            "\r\n").encode()


def split_head(data):
    """(status, headers, rest) once data holds the whole head, else None."""
    if b"\r\n\r\n" not in data:
        return None
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, v = line.split(":", 1)
        headers[k.strip().lower()] = v.strip()
    return int(lines[0].split()[1]), headers, rest


class Sse:
    """One stream on a blocking socket. status/headers from the answer; for a non-200
    answer, body holds it (JSON errors are in .json)."""

    def __init__(self, port, path, headers=None, token=None, timeout=10, rcvbuf=None):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.s.settimeout(timeout)
        self.s.connect(("127.0.0.1", port))
        self.s.sendall(request_bytes(path, headers, token))
        self.status = None
        self.headers = {}
        self.body = b""
        self.json = None
        self.parser = None
        self.closed = False

    def read_head(self, timeout=10):
        self.s.settimeout(timeout)
        data = b""
        while True:
            got = split_head(data)
            if got:
                break
            chunk = self.s.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed before an answer: {data!r}")
            data += chunk
        self.status, self.headers, rest = got
        if self.status != 200:
            n = int(self.headers.get("content-length", "0"))
            while len(rest) < n:
                chunk = self.s.recv(65536)
                if not chunk:
                    break
                rest += chunk
            self.body = rest
            if self.headers.get("content-type", "").startswith("application/json") and rest:
                self.json = json.loads(rest)
            return self
        self.parser = SseParser(self.headers.get("transfer-encoding") == "chunked")
        self.parser.feed(rest)
        return self

    @property
    def events(self):
        return self.parser.events

    def job_events(self):
        return [e for e in self.events if e["data"] is not None and e["event"] is None]

    def wait(self, pred, timeout=10, what="events"):
        """Read until pred(self) is true; returns self. Raises on timeout."""
        end = time.monotonic() + timeout
        while not pred(self):
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {what}; got {self.events!r}")
            if self.closed:
                raise AssertionError(f"stream ended while waiting for {what}; got "
                                     f"{self.events!r}")
            self.s.settimeout(left)
            try:
                chunk = self.s.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                self.closed = True
                continue
            self.parser.feed(chunk)
        return self

    def wait_end(self, timeout=10):
        """Read until the stream ends (last chunk, or the connection closes)."""
        end = time.monotonic() + timeout
        while not self.parser.ended and not self.closed:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"the stream did not end; got {self.events!r}")
            self.s.settimeout(left)
            try:
                chunk = self.s.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                self.closed = True
            else:
                self.parser.feed(chunk)
        return self

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass
