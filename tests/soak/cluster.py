"""The soak's processes: a redis-server with its AOF on (appendfsync always or everysec),
one spool-api, spool-video and spool-pdf workers, the chaos loop that kill -9s them and
starts them again, a small Redis client (RESP over a socket, no library) and a pub/sub
watcher that counts every job event Redis publishes.

Every process is started by harness.Proc (its own session, SIGTERM when the soak dies)
and writes its log to its own file: one file per process generation, so a worker's log
ends where it was killed. Processes are started from one thread that lives as long as
the run (Spawner): the kernel sends the "parent died" signal when the *thread* that
forked a child ends, so a process started from the chaos thread would be stopped with
it."""
import concurrent.futures
import os
import signal
import socket
import subprocess
import threading
import time

from harness import BIN, Proc, free_port, wait_until

PREFIX = "spool:"


class RespError(Exception):
    """An error reply from Redis (as opposed to a connection error, an OSError)."""


class Resp:
    """One connection to Redis speaking RESP2: enough for HGETALL, ZRANGE, PSUBSCRIBE."""

    def __init__(self, port, timeout=5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.f = self.sock.makefile("rb")

    def close(self):
        try:
            self.f.close()
            self.sock.close()
        except OSError:
            pass

    def send(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))

    def read(self):
        line = self.f.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("Redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RespError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)
            if len(data) != n + 2:
                raise ConnectionError("Redis closed the connection")
            return data[:-2].decode(errors="replace")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise ConnectionError(f"unexpected RESP reply {line!r}")

    def cmd(self, *args):
        self.send(*args)
        return self.read()


class Spawner:
    """Starts every process from one long-lived thread (see the module's comment)."""

    def __init__(self):
        self.pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="spawner")

    def proc(self, argv, env=None, name=None, logdir=None):
        return self.pool.submit(Proc, argv, env=env, name=name, logdir=logdir).result()

    def close(self):
        self.pool.shutdown(wait=True)


class Redis:
    """redis-server on a fixed loopback port with its AOF in `dir`; kill() is kill -9,
    start() again loads the AOF."""

    def __init__(self, dir, fsync, logdir, spawner):
        self.dir, self.fsync, self.logdir, self.spawner = dir, fsync, logdir, spawner
        os.makedirs(dir, exist_ok=True)
        self.port = free_port()
        self.proc = None
        self.start()

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout=60):
        """Start and wait until it answers PING, the AOF loaded (a loading Redis answers
        -LOADING). The port is the same on every start."""
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
                "--save", "", "--appendonly", "yes", "--appendfsync", self.fsync,
                "--maxmemory-policy", "noeviction", "--logfile", os.path.join(self.dir, "redis.log")]
        for _ in range(20):
            self.proc = self.spawner.proc(argv, name="redis", logdir=self.logdir)
            try:
                wait_until(lambda: not self.proc.alive() or self.ping(), timeout, 0.02, what="redis")
                if self.proc.alive():
                    return
            except AssertionError:
                self.proc.kill()
            time.sleep(0.2)  # the port was still held: try again
        raise RuntimeError(f"cannot start redis-server (see {self.dir}/redis.log)")

    def ping(self):
        try:
            return self.cmd("PING") == "PONG"
        except (OSError, RespError):
            return False

    def cmd(self, *args):
        c = Resp(self.port)
        try:
            return c.cmd(*args)
        finally:
            c.close()

    def pipeline(self, commands):
        """Send every command, then read every reply (one connection)."""
        c = Resp(self.port, timeout=30)
        try:
            for args in commands:
                c.send(*args)
            out = []
            for _ in commands:
                try:
                    out.append(c.read())
                except RespError as e:
                    out.append(e)
            return out
        finally:
            c.close()

    def kill(self):
        self.proc.kill()

    def stop(self):
        self.proc.stop()


class Watcher(threading.Thread):
    """PSUBSCRIBE to every job's channel and count the events per job ("running",
    "succeeded", "retrying", ...). Reconnects after a Redis restart; what Redis publishes
    while this is reconnecting is missed, so these counts are a cross-check of the
    workers' logs, never the only evidence."""

    def __init__(self, redis):
        super().__init__(daemon=True)
        self.redis = redis
        self.counts = {}  # job id -> {event: n}
        self.reconnects = 0
        self.stopping = False
        self.lock = threading.Lock()
        self.conn = None

    def run(self):
        while not self.stopping:
            try:
                c = Resp(self.redis.port, timeout=None)
                self.conn = c
                c.send("PSUBSCRIBE", PREFIX + "ev:*")
                c.read()
                while not self.stopping:
                    msg = c.read()
                    if isinstance(msg, list) and len(msg) == 4 and msg[0] == "pmessage":
                        jid = msg[2][len(PREFIX) + 3:]
                        with self.lock:
                            ev = self.counts.setdefault(jid, {})
                            ev[msg[3]] = ev.get(msg[3], 0) + 1
            except (OSError, ConnectionError, RespError):
                if self.stopping:
                    return
                self.reconnects += 1
                time.sleep(0.05)

    def stop(self):
        self.stopping = True
        if self.conn:
            try:
                self.conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def snapshot(self):
        with self.lock:
            return {j: dict(ev) for j, ev in self.counts.items()}


class Cluster:
    """The API and the workers around one Redis. Every start of a worker gets a new
    worker id ("video-2.g3": slot video-2, third start), as a restarted container or
    process would; every process's log is its own file under logdir."""

    def __init__(self, cfg, root):
        self.cfg, self.root = cfg, root
        self.logdir = os.path.join(root, "logs")
        self.data = os.path.join(root, "data")
        os.makedirs(self.logdir, exist_ok=True)
        self.spawner = Spawner()
        self.redis = Redis(os.path.join(root, "redis"), cfg.fsync, self.logdir, self.spawner)
        self.port = free_port()
        self.env = {
            "SPOOL_REDIS_URL": self.redis.url, "SPOOL_DATA_DIR": self.data,
            "SPOOL_LOG_FORMAT": "json", "SPOOL_VIDEO_THREADS": "1",
            # The soak fetches nothing from loopback today, but once the SSRF guard lands
            # a source_url job at 127.0.0.1 would need this (issue 12, item 3).
            "SPOOL_OUTBOUND_ALLOW": "127.0.0.0/8",
        }
        self.env.update(cfg.spool_env)
        self.api = None
        self.api_env = {}
        self.workers = {}      # slot -> Proc
        self.generation = {}   # slot -> starts so far
        self.procs = []        # every Proc ever started, with .slot and .worker_id
        self.lock = threading.Lock()

    # ---- processes ---------------------------------------------------------------------

    def start_api(self, extra_env=None, wait=True):
        env = dict(self.env, SPOOL_LISTEN=f"127.0.0.1:{self.port}", **self.api_env)
        env.update(extra_env or {})
        p = self.spawner.proc([os.path.join(BIN, "spool-api")], env=env, name="api", logdir=self.logdir)
        p.slot, p.worker_id, p.killed_at = "api", None, None
        with self.lock:
            self.api = p
            self.procs.append(p)
        if wait:
            self.wait_api()
        return p

    def api_up(self):
        try:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=1)
            s.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
            ok = s.recv(64).startswith(b"HTTP/1.1 200") or False
            s.close()
            return ok
        except OSError:
            return False

    def wait_api(self, timeout=30):
        wait_until(lambda: self.api_up() or not self.api.alive(), timeout, 0.05, what="spool-api")
        if not self.api.alive():
            raise RuntimeError(f"spool-api exited at start:\n{self.api.output()[-3000:]}")

    def start_worker(self, slot):
        kind = slot.split("-")[0]
        n = self.generation.get(slot, 0) + 1
        wid = f"{slot}.g{n}"
        env = dict(self.env, SPOOL_WORKER_ID=wid)
        p = self.spawner.proc([os.path.join(BIN, f"spool-{kind}")], env=env, name=wid, logdir=self.logdir)
        p.slot, p.worker_id, p.killed_at = slot, wid, None
        with self.lock:
            self.generation[slot] = n
            self.workers[slot] = p
            self.procs.append(p)
        return p

    def start(self):
        self.start_api()
        for i in range(self.cfg.video_workers):
            self.start_worker(f"video-{i + 1}")
        for i in range(self.cfg.pdf_workers):
            self.start_worker(f"pdf-{i + 1}")

    def stop(self):
        """SIGTERM everything (workers first), then Redis."""
        for p in list(self.workers.values()):
            p.stop(timeout=60)
        if self.api:
            self.api.stop(timeout=30)
        self.redis.stop()
        self.spawner.close()


class Chaos(threading.Thread):
    """Every SOAK_KILL_EVERY seconds on average: kill -9 a worker (one running a job, most
    of the time; started again after up to a second, under a new id) or the API (started again at once); and Redis
    kill -9 at the planned moments, started again from its AOF after a pause. Also watches
    for a process that died without being killed: a crash, noted and restarted."""

    def __init__(self, cluster, cfg, rng, redis_kill_at, ensure_at):
        super().__init__(daemon=True)
        self.c, self.cfg, self.rng = cluster, cfg, rng
        self.redis_kill_at = sorted(redis_kill_at)  # monotonic times
        # By this (monotonic) time at least one API kill and one worker kill have
        # happened, whatever the dice said: a short run still has both.
        self.ensure_at = ensure_at
        self.events = []    # dicts: what, when (wall), and details
        self.crashes = []   # (proc, exit code, log tail)
        self.errors = []
        self.timers = []    # pending SIGCONTs of stalled workers
        self.stopping = threading.Event()

    def note(self, what, **kw):
        kw.update(what=what, when=time.time())
        self.events.append(kw)

    def run(self):
        try:
            self._loop()
        except Exception as e:  # noqa: BLE001 - reported by the soak, never swallowed
            import traceback
            self.errors.append(traceback.format_exc())
            self.note("chaos-error", error=str(e))

    def _loop(self):
        next_kill = time.monotonic() + self.rng.uniform(0.5, 1.5) * self.cfg.kill_every
        while not self.stopping.is_set():
            self.check_crashes()
            now = time.monotonic()
            done = {e["what"] for e in self.events}
            if self.redis_kill_at and now >= self.redis_kill_at[0]:
                self.redis_kill_at.pop(0)
                self.kill_redis()
            elif now >= self.ensure_at and "kill-api" not in done and self.cfg.api_kill_share > 0:
                self.kill_api()
            elif now >= self.ensure_at and "kill-worker" not in done:
                self.kill_worker()
            elif now >= next_kill:
                roll = self.rng.random()
                if roll < self.cfg.api_kill_share:
                    self.kill_api()
                elif roll < self.cfg.api_kill_share + self.cfg.stall_share:
                    self.stall_worker()
                else:
                    self.kill_worker()
                next_kill = time.monotonic() + self.rng.uniform(0.5, 1.5) * self.cfg.kill_every
            self.stopping.wait(0.05)

    def check_crashes(self):
        c = self.c
        for p in [c.api] + list(c.workers.values()):
            if p is not None and p.killed_at is None and not p.alive():
                code = p.proc.returncode
                with open(p.logpath, "rb") as f:
                    tail = f.read().decode(errors="replace")[-4000:]
                self.crashes.append((p.name, code, tail))
                self.note("crash", proc=p.name, code=code)
                p.killed_at = time.time()  # handled
                if p.slot == "api":
                    c.start_api(wait=False)
                else:
                    c.start_worker(p.slot)

    def busy_workers(self):
        """Slots of the workers Redis says are running a job now (the job's `worker`
        field, for every id under a lease)."""
        try:
            ids = []
            for q in ("video", "pdf"):
                ids += self.c.redis.cmd("ZRANGE", f"{PREFIX}q:{q}:leases", 0, -1) or []
            owners = self.c.redis.pipeline([("HGET", PREFIX + "job:" + j, "worker") for j in ids])
        except (OSError, RespError, ConnectionError):
            return []
        by_id = {p.worker_id: slot for slot, p in self.c.workers.items()}
        return sorted({by_id[w] for w in owners if isinstance(w, str) and w in by_id})

    def pick_worker(self, busy_share):
        """A worker slot: with probability busy_share one running a job (looked for
        during up to 2 s; the jobs are short, so a random pick mostly finds a worker
        waiting), otherwise any. Returns (slot, whether it was seen busy)."""
        busy = []
        if self.rng.random() < busy_share:
            end = time.monotonic() + 2.0
            while not busy and time.monotonic() < end and not self.stopping.is_set():
                busy = self.busy_workers()
                if not busy:
                    time.sleep(0.02)
        return self.rng.choice(busy or sorted(self.c.workers)), bool(busy)

    def stall_worker(self):
        """SIGSTOP a busy worker for longer than its lease, then SIGCONT: a process that
        froze (a VM paused, a swap storm). Its job goes to another worker meanwhile; when
        it wakes, its finish must be refused (fenced by the lease token), never counted
        as a second completion."""
        slot, busy = self.pick_worker(1.0)
        p = self.c.workers[slot]
        secs = self.cfg.lease_s + self.rng.uniform(0.5, 2.0)
        p.signal(signal.SIGSTOP)
        self.note("stall-worker", proc=p.name, slot=slot, at=time.time(), secs=secs, busy=busy)
        t = threading.Timer(secs, lambda: p.alive() and p.signal(signal.SIGCONT))
        t.daemon = True
        t.start()
        self.timers.append(t)

    def wake_all(self):
        """End every stall now (when the chaos stops)."""
        for t in self.timers:
            t.cancel()
        for p in self.c.workers.values():
            if p.alive():
                p.signal(signal.SIGCONT)

    def kill_worker(self):
        slot, busy = self.pick_worker(self.cfg.busy_kill_share)
        p = self.c.workers[slot]
        p.killed_at = time.time()
        p.kill()
        self.note("kill-worker", proc=p.name, slot=slot, pid=p.pid, at=p.killed_at, busy=bool(busy))
        self.stopping.wait(self.rng.uniform(0, self.cfg.restart_delay))
        self.c.start_worker(slot)

    def kill_api(self):
        p = self.c.api
        p.killed_at = time.time()
        p.kill()
        self.note("kill-api", proc=p.name, pid=p.pid, at=p.killed_at)
        self.stopping.wait(self.rng.uniform(0, self.cfg.restart_delay / 2))
        self.c.start_api(wait=False)

    def aof_loads(self):
        """How many times Redis has said it loaded its AOF (its log, every start)."""
        with open(os.path.join(self.c.redis.dir, "redis.log"), errors="replace") as f:
            return f.read().count("DB loaded from append only file")

    def kill_redis(self):
        r = self.c.redis
        try:
            before = r.cmd("ZCARD", PREFIX + "jobs")
        except (OSError, RespError):
            before = None
        # The count and the kill are not one step: a job created in between makes
        # `after` larger, never smaller, so after >= before is the check.
        loads_before = self.aof_loads()
        at = time.time()
        r.kill()
        down = self.rng.uniform(0.5, 2.0)
        self.stopping.wait(down)
        r.start()
        after = r.cmd("ZCARD", PREFIX + "jobs")
        loaded = self.aof_loads() > loads_before
        self.note("kill-redis", at=at, jobs_before=before, jobs_after=after, down_s=down,
                  back_at=time.time(), aof_loaded=loaded)


def sigkill_all(procs):
    """Last-resort clean-up for processes this soak started (by pid, never by name)."""
    for p in procs:
        if p.alive():
            try:
                os.kill(p.pid, signal.SIGKILL)
            except OSError:
                pass


def redis_version():
    out = subprocess.run(["redis-server", "--version"], stdout=subprocess.PIPE).stdout.decode()
    return out.split("v=")[1].split()[0] if "v=" in out else "?"
