"""Integration test support: a private redis-server per suite, the real spool
binaries as subprocesses, an HTTP client, media/data generators, and TAP output.

Each test file builds a Suite, registers tests with @suite.test, and calls
suite.run(); every server it started is stopped on every exit path.
"""
import atexit
import functools
import http.client
import http.server
import json
import os
import shutil
import signal
import signal as _signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("SPOOL_BIN_DIR", os.path.join(ROOT, "bin"))
SANITIZED = os.environ.get("SPOOL_SANITIZED") == "1"
_live = []


def _die_with_parent():
    """In a child before exec: get SIGTERM when the test process dies, even by SIGKILL,
    so no server outlives its test."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout=10.0, interval=0.02, what="condition"):
    """Poll pred() until it returns a truthy value or timeout; return that value."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Redis:
    """A redis-server in a temp dir on a free loopback port (with password: requirepass)."""

    def __init__(self, aof=False, password=None, extra=()):
        self.dir = tempfile.mkdtemp(prefix="spool-it-redis-")
        self.aof = aof
        self.password = password
        self.extra = list(extra)  # redis-server arguments for every start
        self.port = None
        self.proc = None
        _live.append(self)
        self.start()

    @property
    def url(self):
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, extra=(), ready=True):
        """Start (or restart on the same port and directory: AOF data reloads), with
        extra redis-server arguments; wait until it answers PONG, or with ready=False
        until it answers at all (LOADING while it reads its AOF)."""
        restart = self.port is not None
        argv_pass = ["--requirepass", self.password] if self.password else []
        for attempt in range(50 if restart else 5):
            if not restart:
                self.port = free_port()
            self.proc = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                 "--dir", self.dir, "--save", "", "--appendonly", "yes" if self.aof else "no",
                 "--maxmemory-policy", "noeviction", "--logfile", os.path.join(self.dir, "redis.log"),
                 *argv_pass, *map(str, self.extra), *map(str, extra)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent)
            up = self.ping if ready else self.answers
            try:
                wait_until(lambda: self.proc.poll() is not None or up(), 10, what="redis")
                if self.proc.poll() is None:
                    return
            except AssertionError:
                self.proc.kill()
                self.proc.wait()
            time.sleep(0.1)
        raise RuntimeError("could not start redis-server")

    def ping(self):
        try:
            return self.cli("PING") == "PONG"
        except Exception:
            return False

    def answers(self):
        try:
            return self.cli("PING") != ""
        except Exception:
            return False

    def cli(self, *args):
        auth = ["-a", self.password, "--no-auth-warning"] if self.password else []
        out = subprocess.run(["redis-cli", "-p", str(self.port), *auth, *map(str, args)],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=10)
        return out.stdout.decode().strip()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def destroy(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def _rcli(port, *args, password=None, host="127.0.0.1", timeout=5):
    """redis-cli against host:port; its output, stripped, or "" when it got no answer
    within timeout (a stopped or silent server)."""
    auth = ["-a", password, "--no-auth-warning"] if password else []
    try:
        out = subprocess.run(["redis-cli", "-h", host, "-p", str(port), *auth, *map(str, args)],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=timeout)
    except subprocess.TimeoutExpired:
        return ""
    return out.stdout.decode().strip()


class Sentinel:
    """Redis Sentinel in temp dirs: a master and `replicas` replicas (each a Redis, with
    the same password and AOF options) and three sentinels (quorum 2) that watch them as
    `name`, on free loopback ports. A node is down after down_after_ms without an answer;
    a failover that stalls is tried again after failover_timeout_ms. Every sentinel
    starts from a fresh config file (a sentinel rewrites its own: a used one carries its
    id and what it learnt). Returns once every replica is in sync and every sentinel
    knows the master, each replica and the other two sentinels.

    Every node may end up a replica (after a failover), so each has the password
    (masterauth), and none waits the 5 s Redis 7 pauses before a diskless sync."""

    def __init__(self, name="spool", replicas=1, password=None, aof=False,
                 down_after_ms=1000, failover_timeout_ms=5000):
        self.name, self.password, self.nreplicas = name, password, replicas
        self.dir = tempfile.mkdtemp(prefix="spool-it-sentinel-")
        self.nodes = []       # Redis: the first master, then the replicas
        self.sentinels = []   # [port, Popen]
        self.killed = None    # the node kill_master() killed
        self.new_master = None  # (host, port) wait_failover() saw promoted
        _live.append(self)
        self.conf = [f"sentinel monitor {name} 127.0.0.1 {{port}} 2",
                     f"sentinel down-after-milliseconds {name} {down_after_ms}",
                     f"sentinel failover-timeout {name} {failover_timeout_ms}",
                     f"sentinel parallel-syncs {name} 1"]
        if password:
            self.conf.append(f"sentinel auth-pass {name} {password}")
        node = ["--repl-diskless-sync-delay", "0"] + (["--masterauth", password] if password else [])
        master = Redis(aof=aof, password=password, extra=node)
        self.nodes.append(master)
        for _ in range(replicas):
            self.nodes.append(Redis(aof=aof, password=password,
                                    extra=node + ["--replicaof", "127.0.0.1", master.port]))
        for i in range(3):
            self._start_sentinel(i, master.port)
        wait_until(self._synced, 20, 0.05, what="the replicas in sync")
        wait_until(self._known, 30, 0.1,
                   what="sentinels that know the master, its replicas and each other")

    def _start_sentinel(self, i, master_port):
        d = os.path.join(self.dir, f"sentinel-{i}")
        os.makedirs(d, exist_ok=True)
        for attempt in range(5):
            port = free_port()
            conf = os.path.join(d, f"sentinel-{attempt}.conf")
            with open(conf, "w") as f:
                f.write("\n".join([f"port {port}", "bind 127.0.0.1", "protected-mode no",
                                   "daemonize no", f"dir {d}",
                                   f"logfile {os.path.join(d, 'sentinel.log')}"] +
                                  [c.format(port=master_port) for c in self.conf]) + "\n")
            proc = subprocess.Popen(["redis-server", conf, "--sentinel"], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent)
            entry = [port, proc]
            self.sentinels.append(entry)
            try:
                wait_until(lambda: proc.poll() is not None or _rcli(port, "PING") == "PONG", 10,
                           what="a sentinel")
                if proc.poll() is None:
                    return
            except AssertionError:
                proc.kill()
                proc.wait()
            self.sentinels.remove(entry)  # the port was taken meanwhile: another
        raise RuntimeError(f"could not start a sentinel (see {d})")

    @property
    def url(self):
        """The redis-sentinel:// URL for spool: every sentinel, db 0, #name; the data
        nodes' password as ":password@" (Lettuce reads an empty user name as none;
        "password@" is its other form)."""
        auth = f":{self.password}@" if self.password else ""
        hosts = ",".join(f"127.0.0.1:{port}" for port, _ in self.sentinels)
        return f"redis-sentinel://{auth}{hosts}/0#{self.name}"

    def _synced(self):
        return all("master_link_status:up" in n.cli("INFO", "replication")
                   for n in self.replicas())

    def sentinel_master(self, port):
        """SENTINEL master NAME from the sentinel on port, as a dict ({} if no answer)."""
        out = _rcli(port, "SENTINEL", "master", self.name).splitlines()
        return dict(zip(out[0::2], out[1::2])) if len(out) % 2 == 0 else {}

    def sentinel_replicas(self, port):
        """SENTINEL replicas NAME from the sentinel on port: a dict per replica."""
        out = _rcli(port, "SENTINEL", "replicas", self.name).splitlines()
        recs = []
        for k, v in zip(out[0::2], out[1::2]):
            if k == "name":
                recs.append({})
            if recs:
                recs[-1][k] = v
        return recs

    def _known(self):
        for port, _ in self.sentinels:
            m = self.sentinel_master(port)
            if (m.get("num-other-sentinels"), m.get("num-slaves")) != ("2", str(self.nreplicas)):
                return False
        return True

    def reported(self):
        """The master address each live sentinel reports now: [(host, port) or None]."""
        out = []
        for port, proc in self.sentinels:
            a = _rcli(port, "SENTINEL", "get-master-addr-by-name", self.name, timeout=2).split()
            out.append((a[0], int(a[1])) if proc.poll() is None and len(a) == 2 else None)
        return out

    def master_addr(self):
        """(host, port) of the master as most sentinels report it."""
        seen = [a for a in self.reported() if a]
        if not seen:
            raise AssertionError("no sentinel reports a master")
        return max(seen, key=seen.count)

    def node_at(self, addr):
        for n in self.nodes:
            if n.port == addr[1]:
                return n
        raise AssertionError(f"{addr} is none of this setup's nodes")

    def role(self, addr):
        """ROLE's first word at addr ("master", "slave"), "" with no answer."""
        out = _rcli(addr[1], "ROLE", password=self.password, host=addr[0], timeout=2)
        return out.splitlines()[0] if out else ""

    def replicas(self):
        """The live nodes other than the master the sentinels report."""
        mport = self.master_addr()[1] if self.sentinels else self.nodes[0].port
        return [n for n in self.nodes if n.port != mport and n.proc and n.proc.poll() is None]

    def cli(self, *args):
        """redis-cli against the current master."""
        return self.node_at(self.master_addr()).cli(*args)

    def kill_master(self):
        """kill -9 the current master; returns the time (time.time()) it died."""
        addr = self.master_addr()
        node = self.node_at(addr)
        node.proc.kill()
        node.proc.wait(5)
        self.killed = node
        return time.time()

    def wait_failover(self, old_addr, timeout=15.0):
        """Wait until a sentinel reports a master other than old_addr and that node
        answers ROLE master (it takes writes); returns the time (time.time()) and keeps
        that address in .new_master (the other sentinels may still report the old one)."""
        end = time.monotonic() + timeout
        while True:
            for a in self.reported():
                if a and a != tuple(old_addr) and self.role(a) == "master":
                    self.new_master = a
                    return time.time()
            if time.monotonic() > end:
                raise AssertionError(f"no failover from {old_addr} within {timeout}s: "
                                     f"sentinels report {self.reported()}")
            time.sleep(0.01)

    def wait_reported_by_all(self, addr, timeout=15.0):
        """Wait until every live sentinel reports addr as the master; returns the time."""
        wait_until(lambda: all(a == tuple(addr) for a, (_, p) in zip(self.reported(), self.sentinels)
                               if p.poll() is None), timeout, 0.01,
                   what=f"every sentinel to report {addr}")
        return time.time()

    def restart_old_master(self, timeout=20.0):
        """Start the node kill_master() killed again, on its port, as a replica of the
        current master (never as a master with an empty or stale data set), and wait until
        it is in sync and the sentinels count it as a live replica. Returns the node."""
        node = self.killed
        host, port = self.new_master or self.master_addr()
        node.start(["--replicaof", host, port])
        wait_until(lambda: "master_link_status:up" in node.cli("INFO", "replication"), timeout,
                   0.05, what="the old master in sync as a replica")

        def live_replica():
            return all(any(r.get("port") == str(node.port) and "down" not in r.get("flags", "down")
                           for r in self.sentinel_replicas(sport))
                       for sport, _ in self.sentinels)
        wait_until(live_replica, timeout, 0.1, what="the sentinels to see the old master as a replica")
        self.killed = None
        return node

    def destroy(self):
        for _, proc in self.sentinels:
            if proc.poll() is None:
                proc.terminate()
        for _, proc in self.sentinels:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for n in reversed(self.nodes):  # a stopped replica would hold the master's shutdown up
            if n.proc and n.proc.poll() is None:
                n.proc.send_signal(signal.SIGCONT)
            n.destroy()
        shutil.rmtree(self.dir, ignore_errors=True)


class Proc:
    """A spool binary (or any command) with its output collected in a log file."""

    def __init__(self, argv, env=None, name=None, logdir=None):
        self.name = name or os.path.basename(argv[0])
        self.logdir = logdir or tempfile.mkdtemp(prefix="spool-it-log-")
        self.logpath = os.path.join(self.logdir, f"{self.name}-{int(time.time()*1000)}.log")
        self.log = open(self.logpath, "wb")
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.proc = subprocess.Popen(argv, env=full_env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True, preexec_fn=_die_with_parent)
        _live.append(self)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def output(self):
        self.log.flush()
        with open(self.logpath, "rb") as f:
            return f.read().decode(errors="replace")

    def signal(self, sig):
        if self.alive():
            os.kill(self.proc.pid, sig)

    def wait(self, timeout=30):
        """Wait for the process to exit by itself; returns its exit code."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} did not exit within {timeout}s")

    def stop(self, sig=_signal.SIGTERM, timeout=30):
        """Send sig and wait; returns the exit code (SIGKILL after timeout)."""
        if self.alive():
            self.signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, _signal.SIGKILL)
                self.proc.wait()
        self.log.close()
        return self.proc.returncode

    def kill(self):
        return self.stop(_signal.SIGKILL, 5)

    def destroy(self):
        self.stop()


def _cleanup():
    for obj in reversed(_live):
        try:
            obj.destroy()
        except Exception:
            pass


atexit.register(_cleanup)
for _sig in (signal.SIGTERM, signal.SIGINT):
    signal.signal(_sig, lambda s, f: (_cleanup(), sys.exit(128 + s)))


class Http:
    """A small HTTP client for the API (one connection per request)."""

    def __init__(self, host, port, token=None):
        self.host, self.port, self.token = host, port, token

    def request(self, method, path, body=None, headers=None, timeout=30):
        h = dict(headers or {})
        if self.token and "Authorization" not in h:
            h["Authorization"] = "Bearer " + self.token
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        c = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
        finally:
            c.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)


class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body.decode())

    def __repr__(self):
        return f"<Response {self.status} {self.body[:300]!r}>"


def make_clip(path, seconds=2, size="320x240", rate=25, audio=True, extra=None):
    """Generate a test clip with the ffmpeg command (lavfi test sources)."""
    cmd = ["ffmpeg", "-y", "-v", "error", "-f", "lavfi", "-i",
           f"testsrc2=size={size}:rate={rate}:duration={seconds}"]
    if audio:
        cmd += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"]
    cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    if audio:
        cmd += ["-c:a", "aac", "-shortest"]
    cmd += list(extra or []) + [path]
    subprocess.run(cmd, check=True)
    return path


def ffprobe(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_format",
                          "-show_streams", path], stdout=subprocess.PIPE, check=True)
    return json.loads(out.stdout)


class Skip(Exception):
    """Raised by a test that cannot run here; reported as "ok N - name # SKIP why"."""


class Suite:
    """TAP output for a list of test functions; setup/teardown run once."""

    def __init__(self, name):
        self.name = name
        self.tests = []
        self.tmp = tempfile.mkdtemp(prefix=f"spool-it-{name}-")
        _live.append(self)

    def test(self, fn):
        self.tests.append(fn)
        return fn

    def destroy(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run(self, setup=None, teardown=None):
        print(f"1..{len(self.tests)}", flush=True)
        ctx = None
        failed = 0
        try:
            ctx = setup() if setup else None
        except Exception:
            for i, fn in enumerate(self.tests, 1):
                print(f"not ok {i} - {fn.__name__} (setup failed)")
            traceback.print_exc(file=sys.stdout)
            return 1
        for i, fn in enumerate(self.tests, 1):
            start = time.monotonic()
            try:
                fn(ctx) if setup else fn()
                print(f"ok {i} - {fn.__name__} ({time.monotonic() - start:.2f}s)", flush=True)
            except Skip as why:
                print(f"ok {i} - {fn.__name__} # SKIP {why}", flush=True)
            except Exception:
                failed += 1
                print(f"not ok {i} - {fn.__name__}", flush=True)
                for line in traceback.format_exc().splitlines():
                    print("# " + line)
                sys.stdout.flush()
        if teardown:
            try:
                teardown(ctx)
            except Exception:
                traceback.print_exc(file=sys.stdout)
        return 1 if failed else 0


def eq(a, b, what=""):
    """Assert a == b, printing both."""
    if a != b:
        raise AssertionError(f"{what}: expected {b!r}, got {a!r}" if what else f"expected {b!r}, got {a!r}")


TEST_BIN = os.environ.get("SPOOL_TEST_BIN_DIR", os.path.join(ROOT, "build/release/tests"))


class Queue:
    """The queue from the outside, through tests' qtool (sp_queue_* underneath)."""

    def __init__(self, redis, prefix="spool:"):
        self.redis, self.prefix = redis, prefix

    def _run(self, *args, check=True):
        p = subprocess.run([os.path.join(TEST_BIN, "qtool"), self.redis.url, self.prefix,
                            *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=30)
        if check and p.returncode != 0:
            raise AssertionError(f"qtool {args}: {p.stderr.decode().strip()}")
        return p

    def enqueue(self, queue, type_, params, max_attempts=3, input_json=None):
        args = ["enqueue", queue, type_, json.dumps(params), max_attempts]
        if input_json is not None:
            args.append(json.dumps(input_json))
        return self._run(*args).stdout.decode().strip()

    def get(self, job_id):
        p = self._run("get", job_id, check=False)
        if p.returncode == 3:
            return None
        if p.returncode != 0:
            raise AssertionError(p.stderr.decode())
        return json.loads(p.stdout)

    def cancel(self, job_id):
        return self._run("cancel", job_id).stdout.decode().strip()

    def requeue(self, job_id):
        return self._run("requeue", job_id)

    def stats(self, queue):
        return json.loads(self._run("stats", queue).stdout)

    def workers(self):
        out = self._run("workers").stdout.decode().strip()
        return [json.loads(line) for line in out.splitlines() if line]

    def wait_state(self, job_id, states, timeout=30):
        states = (states,) if isinstance(states, str) else tuple(states)
        return wait_until(lambda: (lambda j: j if j and j["state"] in states else None)(self.get(job_id)),
                          timeout, 0.05, what=f"job {job_id} to reach {states}")


class FileHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a directory, quietly; /status/CODE/anything answers HTTP CODE instead.
    Counts GET requests by path in `hits` (shared by every FileServer)."""
    hits = {}

    def do_GET(self):
        FileHandler.hits[self.path] = FileHandler.hits.get(self.path, 0) + 1
        parts = self.path.split("/")
        if len(parts) > 2 and parts[1] == "status":
            body = b"unavailable"
            self.send_response(int(parts[2]))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def log_message(self, *args):
        pass


# spool fetches a user's URL only from public addresses unless SPOOL_OUTBOUND_ALLOW
# allows more: every binary that fetches from serve_files needs this in its environment.
LOOPBACK_ALLOW = {"SPOOL_OUTBOUND_ALLOW": "127.0.0.1"}


def serve_files(directory):
    """An HTTP server on a free loopback port serving directory (see FileHandler), in a
    daemon thread; its URL is f"http://127.0.0.1:{srv.server_address[1]}". The API and
    workers reach it only with LOOPBACK_ALLOW in their environment."""
    handler = functools.partial(FileHandler, directory=directory)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv
