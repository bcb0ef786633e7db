"""Integration test support: a private redis-server per suite, the real spool
binaries as subprocesses, an HTTP client, media/data generators, an S3 store, hosts
on a private network (network namespaces), and TAP output.

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
    """A redis-server in a temp dir on a free loopback port (with password: requirepass).
    host and netns put it on another address, in a named network namespace (`ip netns
    exec`); the test process must be able to reach host (see Netns.enter)."""

    def __init__(self, aof=False, password=None, extra=(), host="127.0.0.1", netns=None):
        self.dir = tempfile.mkdtemp(prefix="spool-it-redis-")
        self.host, self.netns = host, netns
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
        return f"redis://{auth}{self.host}:{self.port}/0"

    def start(self, extra=(), ready=True):
        """Start (or restart on the same port and directory: AOF data reloads), with
        extra redis-server arguments; wait until it answers PONG, or with ready=False
        until it answers at all (LOADING while it reads its AOF)."""
        restart = self.port is not None
        argv_pass = ["--requirepass", self.password] if self.password else []
        # Another host reaches a server without a password only with protected mode off.
        if not self.host.startswith("127.") and not self.password:
            argv_pass += ["--protected-mode", "no"]
        netns = ["ip", "netns", "exec", self.netns] if self.netns else []
        for attempt in range(50 if restart else 5):
            if not restart:
                self.port = free_port()
            self.proc = subprocess.Popen(
                [*netns, "redis-server", "--port", str(self.port), "--bind", self.host,
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
        out = subprocess.run(["redis-cli", "-h", self.host, "-p", str(self.port), *auth,
                              *map(str, args)],
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
    (masterauth), and none waits the 5 s Redis 7 pauses before a diskless sync.

    down_after_ms is 2 s, not 1: a sentinel pings each node once a second, so at 1 s one
    late answer marks a node down, and on a loaded machine a master promoted a moment
    before was failed over again (seen in 2 of 8 runs in a fresh root): the second
    failover promotes the replica still resyncing from the first new master and throws
    away everything written since, which no client can prevent."""

    def __init__(self, name="spool", replicas=1, password=None, aof=False,
                 down_after_ms=2000, failover_timeout_ms=5000):
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


# ---- the blob store a suite's processes use ----------------------------------------------
# SPOOL_TEST_BLOBS picks it: "dir" (the default; a directory under the suite's temp dir)
# or "s3" (one harness.S3 per suite, a key prefix per store). tests/run.py runs the
# suites that use blob_store() once in each mode. A test reads what spool stored only
# through the store object, so it checks the same behaviour in both; the few tests about
# the directory layout itself call require_dir_blobs(why) and are skipped with s3.
BLOB_MODES = ("dir", "s3")


def blob_mode():
    """"dir" or "s3", from SPOOL_TEST_BLOBS (empty: "dir")."""
    mode = os.environ.get("SPOOL_TEST_BLOBS") or "dir"
    if mode not in BLOB_MODES:
        raise RuntimeError(f"SPOOL_TEST_BLOBS={mode!r}: want one of {BLOB_MODES}")
    return mode


def blob_store(suite, name="data"):
    """A new, empty blob store for suite's processes in the mode SPOOL_TEST_BLOBS names
    (DirBlobs or S3Blobs); name (unique in the suite) names its directory or key prefix.
    check_blob_stores(suite) cross-checks every store made here."""
    store = (S3Blobs if blob_mode() == "s3" else DirBlobs)(suite, name)
    suite.stores.append(store)
    return store


def require_dir_blobs(why):
    """Skip the calling test unless the store is a directory: for tests about the
    directory layout itself (why says what has no counterpart in an object store)."""
    if blob_mode() != "dir":
        raise Skip(f"directory store only: {why}")


class _Blobs:
    """What both stores answer. location: what tools take as STORE (a directory or a
    URL); env(): the settings that make a spool process use the store; names(id): a
    job's committed blobs; pending(id): what its unfinished writes left; jobs(): ids
    with anything stored; everything(): "<id>/<name>" of all that; exists, size,
    content_type (None in a directory), read, local_path (a file for ffprobe and
    pdfinfo), remove; check_output(id, entry) -> problems; leftovers() -> unfinished
    writes anywhere."""

    def __init__(self, suite, name):
        self.suite, self.name = suite, name
        self.watched = []  # (Redis, key prefix) whose jobs check_blob_stores cross-checks

    def watch(self, redis, prefix="spool:"):
        """check_blob_stores cross-checks the succeeded jobs recorded in redis under
        prefix against this store."""
        if (redis, prefix) not in self.watched:
            self.watched.append((redis, prefix))
        return self

    def check_outputs(self, job):
        """Assert that the store holds each of job's outputs as its record states them."""
        bad = [p for o in job["outputs"] or [] for p in self.check_output(job["id"], o)]
        if bad:
            raise AssertionError("outputs not as the job reports them:\n  " + "\n  ".join(bad))


class DirBlobs(_Blobs):
    """The directory store (SPOOL_DATA_DIR) at <suite tmp>/<name>: jobs/<id[-2:]>/<id>/<name>,
    staging files "<name>.tmp-<random>" beside the final names (common/include/spool/blob.h)."""

    kind = "dir"

    def __init__(self, suite, name):
        super().__init__(suite, name)
        self.root = os.path.join(suite.tmp, name)
        self.location = self.root

    def env(self):
        return {"SPOOL_DATA_DIR": self.root}

    def job_dir(self, job_id):
        return os.path.join(self.root, "jobs", job_id[-2:], job_id)

    def _files(self, job_id):
        """The job's files as names: paths under its directory ("hls/720p/seg_00001.m4s")."""
        d, out = self.job_dir(job_id), []
        for dirpath, _, files in os.walk(d):
            rel = os.path.relpath(dirpath, d)
            out += [f if rel == "." else os.path.join(rel, f) for f in files]
        return sorted(out)

    def names(self, job_id):
        """The job's committed blobs, sorted."""
        return [f for f in self._files(job_id) if ".tmp-" not in f]

    def pending(self, job_id):
        """Paths of what unfinished writes of the job left: its staging files."""
        return [os.path.join(self.job_dir(job_id), f) for f in self._files(job_id) if ".tmp-" in f]

    def jobs(self):
        """Ids of the jobs with anything stored (committed or not), sorted."""
        root = os.path.join(self.root, "jobs")
        out = []
        for shard in sorted(os.listdir(root)) if os.path.isdir(root) else []:
            out += os.listdir(os.path.join(root, shard))
        return sorted(out)

    def everything(self):
        """Every blob and unfinished write in the store, as "<id>/<name>" (sorted)."""
        root = os.path.join(self.root, "jobs")
        out = []
        for dirpath, _, files in os.walk(root):
            rel = os.path.relpath(dirpath, root).split(os.sep)[1:]  # <id>[/folders], no shard
            out += [os.path.join(*rel, f) for f in files if rel]
        return sorted(out)

    def exists(self, job_id, name):
        return os.path.isfile(os.path.join(self.job_dir(job_id), name))

    def size(self, job_id, name):
        """The blob's size, None when there is none."""
        path = os.path.join(self.job_dir(job_id), name)
        return os.path.getsize(path) if os.path.isfile(path) else None

    def content_type(self, job_id, name):
        return None  # a directory keeps no content types

    def read(self, job_id, name, start=0, n=None):
        """The blob's bytes (n from start, or to the end)."""
        with open(os.path.join(self.job_dir(job_id), name), "rb") as f:
            f.seek(start)
            return f.read() if n is None else f.read(n)

    def local_path(self, job_id, name):
        """A local file with the blob's bytes, for ffprobe, pdfinfo and the like."""
        path = os.path.join(self.job_dir(job_id), name)
        if not os.path.isfile(path):
            raise AssertionError(f"no blob {job_id}/{name} in {self.root}")
        return path

    def remove(self, job_id, name):
        os.unlink(os.path.join(self.job_dir(job_id), name))

    def backdate(self, job_id, seconds):
        """Make the job's blobs (and its directory) look seconds older, for the GC."""
        when = time.time() - seconds
        for f in self._files(job_id):
            os.utime(os.path.join(self.job_dir(job_id), f), (when, when))
        os.utime(self.job_dir(job_id), (when, when))

    def check_output(self, job_id, out):
        """Problems with one entry of a job's outputs list ([] when the store holds the
        blob with the size the record states, and in S3 its content type)."""
        size = self.size(job_id, out["name"])
        if size is None:
            return [f"{job_id}/{out['name']}: no such blob"]
        return [] if size == out["bytes"] else \
            [f"{job_id}/{out['name']}: {size} bytes stored, the job says {out['bytes']}"]

    def leftovers(self):
        """Staging files anywhere in the store."""
        return [e for e in self.everything() if ".tmp-" in e]


class S3Blobs(_Blobs):
    """The S3 store (SPOOL_BLOB_URL=s3://BUCKET/<name>/) in the suite's harness.S3,
    started by the first such store of the suite and shared by the rest; read back with
    the harness's own boto3 client. Processes get a scratch directory of their own
    (SPOOL_SCRATCH_DIR, where libraries' files wait for their upload) and a
    SPOOL_DATA_DIR that must never appear (check_blob_stores says so if it does)."""

    kind = "s3"

    def __init__(self, suite, name):
        super().__init__(suite, name)
        if suite.s3 is None:
            suite.s3 = S3()
        self.s3 = suite.s3
        self.client = self.s3.client()
        self.prefix = f"{name}/"
        self.location = f"s3://{self.s3.bucket}/{self.prefix}"
        self.scratch = os.path.join(suite.tmp, f"{name}-scratch")
        self.no_dir = os.path.join(suite.tmp, f"{name}-no-data-dir")
        self.copies = os.path.join(suite.tmp, f"{name}-copies")

    def env(self):
        return {**self.s3.spool_env(self.prefix), "SPOOL_SCRATCH_DIR": self.scratch,
                "SPOOL_DATA_DIR": self.no_dir}

    def key(self, job_id, name=""):
        return f"{self.prefix}jobs/{job_id}/{name}"

    def _objects(self, prefix):
        """Keys of the objects under prefix (every page), with this store's one client."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.s3.bucket, Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def _uploads(self, prefix):
        """Keys of the multipart uploads in progress under prefix."""
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.s3.bucket, Prefix=prefix)
        return [u["Key"] for page in pages for u in page.get("Uploads", [])]

    def names(self, job_id):
        return sorted(k[len(self.key(job_id)):] for k in self._objects(self.key(job_id)))

    def pending(self, job_id):
        """Scratch files of the job (local copies of its inputs while it runs, libraries'
        files not yet uploaded) and its multipart uploads in progress ("upload:<key>")."""
        out = []
        for dirpath, _, files in os.walk(self.scratch):
            out += [os.path.join(dirpath, f) for f in files if f.startswith(job_id + ".")]
        return sorted(out) + [f"upload:{k}" for k in self._uploads(self.key(job_id))]

    def everything(self):
        """"<id>/<name>" of the objects, "<id>/<name> (upload)" of the multipart uploads in
        progress."""
        n = len(self.prefix + "jobs/")
        return sorted([k[n:] for k in self._objects(self.prefix + "jobs/")] +
                      [k[n:] + " (upload)" for k in self._uploads(self.prefix + "jobs/")])

    def jobs(self):
        return sorted({e.split("/")[0] for e in self.everything()})

    def _head(self, job_id, name):
        from botocore.exceptions import ClientError
        try:
            return self.client.head_object(Bucket=self.s3.bucket, Key=self.key(job_id, name))
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def exists(self, job_id, name):
        return self._head(job_id, name) is not None

    def size(self, job_id, name):
        h = self._head(job_id, name)
        return h["ContentLength"] if h else None

    def content_type(self, job_id, name):
        h = self._head(job_id, name)
        return h["ContentType"] if h else None

    def read(self, job_id, name, start=0, n=None):
        kw = {}
        if start or n is not None:
            kw["Range"] = f"bytes={start}-" + ("" if n is None else str(start + n - 1))
        return self.client.get_object(Bucket=self.s3.bucket, Key=self.key(job_id, name),
                                      **kw)["Body"].read()

    def local_path(self, job_id, name):
        """A fresh download of the object into the suite's temp dir."""
        os.makedirs(self.copies, exist_ok=True)
        path = os.path.join(self.copies, f"{job_id}.{name}")
        if not self.exists(job_id, name):
            raise AssertionError(f"no object {self.key(job_id, name)}")
        self.client.download_file(self.s3.bucket, self.key(job_id, name), path)
        return path

    def remove(self, job_id, name):
        self.client.delete_object(Bucket=self.s3.bucket, Key=self.key(job_id, name))

    def backdate(self, job_id, seconds):
        for k in self._objects(self.key(job_id)):
            self.s3.backdate(k, seconds)

    def check_output(self, job_id, out):
        h = self._head(job_id, out["name"])
        key = self.key(job_id, out["name"])
        if h is None:
            return [f"{key}: no such object"]
        bad = []
        if h["ContentLength"] != out["bytes"]:
            bad.append(f"{key}: {h['ContentLength']} bytes stored, the job says {out['bytes']}")
        if h["ContentType"] != out["content_type"]:
            bad.append(f"{key}: Content-Type {h['ContentType']!r}, the job says "
                       f"{out['content_type']!r}")
        return bad

    def leftovers(self):
        """Multipart uploads in progress under the prefix and files in the scratch dir."""
        out = [f"upload:{k}" for k in self._uploads(self.prefix)]
        for dirpath, _, files in os.walk(self.scratch):
            out += [os.path.join(dirpath, f) for f in files if f != "lock"]
        return out


def _succeeded_jobs(redis, prefix):
    """[(id, outputs)] of the succeeded jobs recorded in redis under prefix."""
    p = subprocess.run(["redis-cli", "-p", str(redis.port)] +
                       (["-a", redis.password, "--no-auth-warning"] if redis.password else []) +
                       ["--scan", "--pattern", f"{prefix}job:*"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    if p.returncode != 0:
        raise AssertionError(f"redis-cli --scan: {p.stderr.decode().strip()}")
    keys = p.stdout.decode().split()
    out = []
    for k in sorted(keys):
        if redis.cli("HGET", k, "state") == "succeeded":
            out.append((k[len(prefix) + 4:], json.loads(redis.cli("HGET", k, "outputs") or "[]")))
    return out


def check_blob_stores(suite):
    """What every blob store of the suite holds against what its jobs report, through
    the store's own reading (a boto3 client for S3): each succeeded job recorded in a
    watched Redis has each of its outputs, with the size (and in S3 the content type)
    its record states; no unfinished write is left (staging files; multipart uploads
    and scratch files); in S3 mode no process wrote a directory store and the proxy
    refused no request. Meant as a suite's last test (run before teardown, while its
    Redis servers run). Prints a TAP comment with the counts."""
    if not suite.stores:
        raise AssertionError("the suite made no blob store to check")
    bad, jobs, outputs = [], 0, 0
    for store in suite.stores:
        for redis, prefix in store.watched:
            if not redis.ping():
                continue  # a test's own Redis, gone with the test
            for job_id, outs in _succeeded_jobs(redis, prefix):
                jobs += 1
                outputs += len(outs)
                for o in outs:
                    bad += store.check_output(job_id, o)
        bad += [f"left unfinished: {e}" for e in store.leftovers()]
        if store.kind == "s3" and os.path.exists(store.no_dir):
            bad.append(f"a process wrote a directory store at {store.no_dir} in S3 mode")
    if suite.s3 is not None:
        bad += [f"refused by the proxy: {r}" for r in suite.s3.requests_refused()]
    print(f"# {blob_mode()} store: {jobs} succeeded jobs and {outputs} outputs cross-checked "
          f"in {len(suite.stores)} stores", flush=True)
    if bad:
        raise AssertionError(f"{len(bad)} problems in the blob stores:\n  " + "\n  ".join(bad[:50]))


class Proc:
    """A spool binary (or any command) with its output collected in a log file; with
    netns, run in that named network namespace (`ip netns exec`, which execs the
    command in place: the pid, signals and PR_SET_PDEATHSIG are the command's own)."""

    def __init__(self, argv, env=None, name=None, logdir=None, netns=None):
        self.name = name or os.path.basename(argv[0])
        self.netns = netns
        if netns:
            argv = ["ip", "netns", "exec", netns, *argv]
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
    """TAP output for a list of test functions; setup/teardown run once. With
    SPOOL_TEST_ONLY=TEXT, tests whose name lacks TEXT are skipped (for reruns)."""

    def __init__(self, name):
        self.name = name
        self.tests = []
        self.tmp = tempfile.mkdtemp(prefix=f"spool-it-{name}-")
        self.stores = []  # blob_store()'s, for check_blob_stores
        self.s3 = None    # the S3 the suite's S3Blobs share, started by the first
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
        except Skip as why:  # nothing here can run: every test says why
            for i, fn in enumerate(self.tests, 1):
                print(f"ok {i} - {fn.__name__} # SKIP {why}", flush=True)
            return 0
        except Exception:
            for i, fn in enumerate(self.tests, 1):
                print(f"not ok {i} - {fn.__name__} (setup failed)")
            traceback.print_exc(file=sys.stdout)
            return 1
        only = os.environ.get("SPOOL_TEST_ONLY", "")  # run only tests whose name has it
        for i, fn in enumerate(self.tests, 1):
            if only and only not in fn.__name__:
                print(f"ok {i} - {fn.__name__} # SKIP not matching SPOOL_TEST_ONLY={only}", flush=True)
                continue
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


# ---- S3: s3rver behind the SigV4-verifying proxy ---------------------------------------
# s3rver comes from deps/npm (make test-build runs `npm ci` into build/npm); the proxy
# runs with Debian's python3 and python3-botocore whatever `python3` is first on PATH
# (-I: no user site-packages, no PYTHON* variables), so what verifies signatures is the
# same on every machine.
NPM_DIR = os.environ.get("SPOOL_NPM_DIR", os.path.join(ROOT, "build", "npm"))
S3RVER_JS = os.path.join(NPM_DIR, "node_modules", "s3rver", "bin", "s3rver.js")
S3PROXY = os.path.join(ROOT, "tests", "support", "s3proxy.py")
S3PROXY_PYTHON = os.environ.get("SPOOL_S3PROXY_PYTHON", "/usr/bin/python3")


class Refusals:
    """Assert what the proxy refused during a block: `with Refusals(s3, ["X"]):`."""

    def __init__(self, s3, codes=()):
        self.s3, self.codes = s3, list(codes)

    def __enter__(self):
        self.before = len(self.s3.requests_refused())

    def __exit__(self, et, ev, tb):
        if et is None:
            new = [r["code"] for r in self.s3.requests_refused()[self.before:]]
            eq(new, self.codes, "codes the proxy refused")


class S3:
    """An S3 endpoint for tests: s3rver 3.7.1 (deps/npm) on a temp data dir, behind
    tests/support/s3proxy.py, each on its own loopback port (both bind port 0 and print
    the one they got). The proxy checks every request's SigV4 signature (header or
    presigned) and payload hash like S3, refuses a Transfer-Encoding: chunked body like
    S3 (501) unless allow_chunked, and answers what s3rver lacks from s3rver's files:
    AbortMultipartUpload, ListMultipartUploads, ListParts, NoSuchUpload, and the part
    checks of CompleteMultipartUpload (InvalidPart, InvalidPartOrder, EntityTooSmall).

    Clients use endpoint (the proxy), bucket, region, access_key and secret_key, with
    path-style addressing; or temporary credentials, session_access_key and
    session_secret_key with session_token (the proxy refuses them without it, and a
    token with the others). vhost_endpoint (http://localhost:PORT) is the proxy for
    virtual-host style: BUCKET.localhost:PORT, which clients must reach at 127.0.0.1
    with that Host header. client() is an independent boto3 client for cross-checks;
    requests_refused() lists what the proxy refused (assert it stays empty).

    s3rver's own gaps, still there: a suffix range (bytes=-N) answers the wrong bytes,
    bytes=0-0 answers the whole object, CopyObject of a key with '+' is 404, a key
    with an empty segment ("/a", "a//b") is 404,
    ListObjects ignores encoding-type=url, ETags of parts are not checked by s3rver
    (the proxy checks them on Complete). Both processes stop on every exit path
    (destroy(), the harness's atexit and signal cleanup, and PR_SET_PDEATHSIG).

    host and netns run both in a named network namespace with the proxy on host there
    (s3rver stays on that namespace's loopback, so upstream and vhost_endpoint mean
    something only inside it); the test process must be able to reach host."""

    region = "us-east-1"
    access_key = "AKIDSPOOLTEST0000001"
    secret_key = "spool/test+secret=0123456789abcdefghijkl"
    session_access_key = "ASIASPOOLTEST0000002"
    session_secret_key = "spool/session+secret=abcdefghij0123456789"
    session_token = "FwoGZXIvYXdzEJr//////////spool+session/token=="

    def __init__(self, bucket="spool", allow_chunked=False, host="127.0.0.1", netns=None):
        self.bucket, self.host, self.netns = bucket, host, netns
        self.dir = tempfile.mkdtemp(prefix="spool-it-s3-")
        self.data_dir = os.path.join(self.dir, "data")
        self.refusals_path = os.path.join(self.dir, "refusals.jsonl")
        self.faults_path = os.path.join(self.dir, "faults")
        self.s3rver = self.proxy = None
        _live.append(self)
        try:
            self._start(allow_chunked)
        except BaseException:
            self.destroy()
            raise

    def _start(self, allow_chunked):
        node = shutil.which("node") or shutil.which("nodejs")
        if not node or not os.path.exists(S3RVER_JS):
            raise RuntimeError(f"s3rver is not installed ({S3RVER_JS}, node {node}): run "
                               "`make test-build` (scripts/npm-deps.sh) after `make deps`")
        if not os.access(S3PROXY_PYTHON, os.X_OK):
            raise RuntimeError(f"{S3PROXY_PYTHON} is missing (Debian's python3, with python3-botocore)")
        env = {}
        major = subprocess.run([node, "--version"], stdout=subprocess.PIPE, timeout=10).stdout
        if int(major.decode().strip().lstrip("v").split(".")[0]) >= 17:
            # s3rver's ListObjectsV2 continuation tokens use DES, in OpenSSL 3's legacy provider.
            opts = os.environ.get("NODE_OPTIONS", "")
            env["NODE_OPTIONS"] = (opts + " --openssl-legacy-provider").strip()
        self.s3rver = Proc([node, S3RVER_JS, "-d", self.data_dir, "-a", "127.0.0.1", "-p", "0",
                            "--configure-bucket", self.bucket], env=env, name="s3rver", logdir=self.dir,
                           netns=self.netns)
        up = self._listening(self.s3rver, "S3rver listening on ")
        argv = [S3PROXY_PYTHON, "-I", S3PROXY, "--listen", f"{self.host}:0", "--upstream", up,
                "--data-dir", self.data_dir, "--creds",
                f"{self.access_key}:{self.secret_key},{self.session_access_key}:{self.session_secret_key}",
                "--token", f"{self.session_access_key}:{self.session_token}",
                "--region", self.region, "--refusals", self.refusals_path,
                "--faults", self.faults_path]
        if allow_chunked:
            argv.append("--allow-chunked")
        self.proxy = Proc(argv, name="s3proxy", logdir=self.dir, netns=self.netns)
        self.upstream = "http://" + up
        self.endpoint = "http://" + self._listening(self.proxy, "s3proxy listening on ")
        self.vhost_endpoint = "http://localhost:" + self.endpoint.rsplit(":", 1)[1]
        # Ready when a signed request passes the proxy and finds the bucket in s3rver.
        c = self.client()
        wait_until(lambda: self._bucket_answers(c), 15, 0.05, what="s3rver's bucket through s3proxy")

    def _listening(self, proc, prefix):
        """HOST:PORT from proc's "<prefix>HOST:PORT" line; raises with its output if it
        dies or says nothing within 15 s."""
        def addr():
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited ({proc.proc.returncode}):\n{proc.output()[-3000:]}")
            for line in proc.output().splitlines():
                if line.startswith(prefix):
                    return line[len(prefix):].split()[0]
            return None
        try:
            return wait_until(addr, 15, 0.02, what=f"{proc.name} to listen")
        except AssertionError:
            raise RuntimeError(f"{proc.name} did not start:\n{proc.output()[-3000:]}")

    @staticmethod
    def _bucket_answers(c):
        try:
            c.head_bucket(Bucket=c.spool_bucket)
            return True
        except Exception:
            return False

    @property
    def proxy_pid(self):
        return self.proxy.pid

    def client(self, secret_key=None, access_key=None, session_token=None, **config):
        """A new boto3 S3 client for the proxy (path-style, SigV4, no retries, checksums
        only where S3 requires them), independent of the code under test, with
        access_key and secret_key (the suite's unless given) and session_token. config
        goes to botocore's Config."""
        import boto3
        from botocore.config import Config
        conf = dict(signature_version="s3v4", s3={"addressing_style": "path"},
                    retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=10, read_timeout=60)
        conf.update(config)
        try:
            cfg = Config(request_checksum_calculation="when_required",
                         response_checksum_validation="when_required", **conf)
        except TypeError:                   # botocore < 1.36: no default checksums to turn off
            cfg = Config(**conf)
        c = boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, region_name=self.region, config=cfg,
            aws_access_key_id=access_key or self.access_key, aws_secret_access_key=secret_key or self.secret_key,
            aws_session_token=session_token)
        c.spool_bucket = self.bucket
        return c

    def inject(self, method, status, code, count):
        """Answer the next count requests with this method ("*": any), once their
        signature passed, with status and S3 error code, as a failing store would."""
        with open(self.faults_path, "a") as f:
            f.write(f"{method} {status} {code} {count}\n")

    def faults_left(self):
        """How many injected failures were not used yet."""
        try:
            with open(self.faults_path) as f:
                return sum(int(line.split()[3]) for line in f if line.strip())
        except FileNotFoundError:
            return 0

    def spool_env(self, prefix="spool/", part_size="5M"):
        """The settings that make spool's processes use this store (SPOOL_BLOB_URL
        s3://BUCKET/PREFIX, path-style, the credentials as AWS_*), with part_size
        (SPOOL_S3_PART_SIZE) at S3's least so multipart uploads start early."""
        return {"SPOOL_BLOB_URL": f"s3://{self.bucket}/{prefix}", "SPOOL_S3_ENDPOINT": self.endpoint,
                "SPOOL_S3_REGION": self.region, "SPOOL_S3_PATH_STYLE": "1",
                "SPOOL_S3_PART_SIZE": part_size, "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key}

    def requests_refused(self, auth_only=True):
        """What the proxy refused so far, oldest first: dicts with method, path, status,
        code, message, auth. auth_only: only protocol faults (bad or missing signature,
        unsigned x-amz-* header, payload hash mismatch, chunked body...), not S3 answers
        such as NoSuchUpload or EntityTooSmall."""
        try:
            with open(self.refusals_path) as f:
                rows = [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            rows = []
        return [r for r in rows if r["auth"] or not auth_only]

    def objects(self, prefix=""):
        """{key: size} of the bucket's objects under prefix (every page)."""
        out = {}
        for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for o in page.get("Contents", []):
                out[o["Key"]] = o["Size"]
        return out

    def backdate(self, key, seconds):
        """Make the object at key look seconds older (s3rver answers its file's mtime as
        its LastModified), as a test backdates a file."""
        *dirs, last = key.split("/")
        path = os.path.join(self.data_dir, self.bucket, *dirs, last + "._S3rver_object")
        when = time.time() - seconds
        os.utime(path, (when, when))

    def uploads_in_progress(self, prefix=""):
        """[(key, upload id)] of multipart uploads neither completed nor aborted."""
        r = self.client().list_multipart_uploads(Bucket=self.bucket, Prefix=prefix)
        return [(u["Key"], u["UploadId"]) for u in r.get("Uploads", [])]

    def logs(self):
        return "\n".join(p.output() for p in (self.s3rver, self.proxy) if p)

    def destroy(self):
        for p in (self.proxy, self.s3rver):
            if p:
                p.stop(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


# ---- hosts on a private network: named network namespaces -------------------------------
NETNS_DIR = "/var/run/netns"  # where `ip netns` keeps its names
CLONE_NEWNET = 0x40000000


class Netns:
    """Hosts for tests that run spool's processes as on separate machines: one named
    network namespace per host, all on one private IPv4 network. The first host is the
    hub: a bridge there carries its address, and every other host is joined to that
    bridge by a veth pair whose inner end (eth0) carries the host's address. Every
    namespace has its own loopback, up. No address is put anywhere else, nothing routes
    out, and the machine's own network is never touched.

    ns(host) is the namespace's name, spool-<test pid>-<host>; addr(host) its address,
    10.A.B.N (/24, A and B from the test's pid, N from the host's place in hosts). Run a
    process there with Proc(..., netns=net.ns(host)) (or the host/netns arguments of
    Redis and S3); enter(host) moves the calling thread of the test process there, so
    the sockets it opens, the threads and processes it starts afterwards are on that
    host, and leave() brings it back.

    destroy() (also run by the harness's atexit and SIGTERM/SIGINT cleanup, after the
    processes made later are stopped) leaves and deletes every namespace. A run killed
    by SIGKILL cannot, so each new Netns first deletes the spool-<pid>-* namespaces of
    pids no longer alive.

    Raises Skip, saying why, where namespaces cannot be made: not root, no `ip`
    command, or a system (a container, a kernel without veth or bridges) that refuses
    them. Once they exist, a failure to configure them is an error."""

    def __init__(self, hosts):
        pid = os.getpid()
        self.hosts = list(hosts)
        self.prefix = f"spool-{pid}-"
        self.net = f"10.{100 + (pid >> 8) % 150}.{pid % 256}"
        self.made = []
        self._home = None
        self._libc = None
        self.machine = os.readlink("/proc/thread-self/ns/net")  # the namespace made in
        if os.geteuid() != 0:
            raise Skip("network namespaces need root")
        if not shutil.which("ip"):
            raise Skip("no `ip` command (iproute2) to make network namespaces")
        _live.append(self)
        try:
            self._sweep()
            self._make()
            self._configure()
        except BaseException:
            self.destroy()
            raise

    def ns(self, host):
        return self.prefix + host

    def addr(self, host):
        return f"{self.net}.{self.hosts.index(host) + 1}"

    @staticmethod
    def _ip(*args, ns=None):
        argv = ["ip", *(["-n", ns] if ns else []), *map(str, args)]
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: {p.stderr.decode().strip()}")
        return p.stdout.decode()

    def _sweep(self):
        """Delete the namespaces earlier runs, killed, left behind."""
        try:
            names = [line.split()[0] for line in self._ip("netns", "list").splitlines() if line]
        except RuntimeError:
            return
        for name in names:
            parts = name.split("-")
            if len(parts) != 3 or parts[0] != "spool" or not parts[1].isdigit():
                continue
            try:
                os.kill(int(parts[1]), 0)
            except ProcessLookupError:
                subprocess.run(["ip", "netns", "del", name], stderr=subprocess.DEVNULL, timeout=30)
            except PermissionError:
                pass

    def _make(self):
        """The namespaces, the bridge and the veth pairs: what a system may refuse (Skip)."""
        hub = self.ns(self.hosts[0])
        try:
            for host in self.hosts:
                self._ip("netns", "add", self.ns(host))
                self.made.append(self.ns(host))
            self._ip("netns", "exec", hub, "true")
            self._ip("link", "add", "br0", "type", "bridge", ns=hub)
            for host in self.hosts[1:]:
                # The hub's end is named after the host (at most 15 bytes: "v-" + 13).
                self._ip("link", "add", f"v-{host}"[:15], "type", "veth", "peer", "name", "eth0",
                         "netns", self.ns(host), ns=hub)
        except RuntimeError as e:
            raise Skip(f"cannot make network namespaces here: {e}")

    def _configure(self):
        hub = self.ns(self.hosts[0])
        self._ip("link", "set", "lo", "up", ns=hub)
        self._ip("addr", "add", f"{self.addr(self.hosts[0])}/24", "dev", "br0", ns=hub)
        self._ip("link", "set", "br0", "up", ns=hub)
        for host in self.hosts[1:]:
            self._ip("link", "set", f"v-{host}"[:15], "master", "br0", "up", ns=hub)
            self._ip("link", "set", "lo", "up", ns=self.ns(host))
            self._ip("addr", "add", f"{self.addr(host)}/24", "dev", "eth0", ns=self.ns(host))
            self._ip("link", "set", "eth0", "up", ns=self.ns(host))

    def enter(self, host):
        """Move the calling thread into host's namespace (from wherever it is)."""
        import ctypes
        if self._libc is None:
            self._libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(os.path.join(NETNS_DIR, self.ns(host)), os.O_RDONLY | os.O_CLOEXEC)
        try:
            if self._home is None:
                self._home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            if self._libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns into {self.ns(host)}: {os.strerror(err)}")
        finally:
            os.close(fd)

    def leave(self):
        """Bring the calling thread back to the network it was in before enter()."""
        if self._home is None:
            return
        if self._libc.setns(self._home, CLONE_NEWNET) != 0:
            raise OSError("setns back to the machine's network failed")
        os.close(self._home)
        self._home = None

    def destroy(self):
        try:
            self.leave()
        finally:
            for name in reversed(self.made):
                subprocess.run(["ip", "netns", "del", name], stderr=subprocess.DEVNULL, timeout=30)
            self.made = []
