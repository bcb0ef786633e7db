#!/usr/bin/env python3
"""make bench-video-input: how a video worker should read its input from an S3 store
(issue 13), both ways side by side in one run, on the same store and the same work.

  A  local copy (what spool-video does: sp_blob_local_open, a HEAD then one streamed GET
     into a scratch file), then libavformat on the file: `curl -I` and `curl -o` with
     presigned URLs, then ffprobe / ffmpeg on the copy.
  B  ranged GETs: ffprobe / ffmpeg on a presigned GET URL, libavformat's http protocol
     asking for `Range: bytes=N-` at every seek it cannot satisfy by reading on. Three
     ways: ffmpeg's defaults (seekable auto: a 206 with Content-Range makes it
     seekable; a new connection per seek), `-seekable 1`, and `-multiple_requests 1`
     (keep-alive, which lets a seek reuse the connection only once a response was read
     to its end: never with open-ended ranges, so it makes as many connections).
     ffmpeg's -reconnect options change nothing here (no connection drops); a real
     worker reading for minutes would need them, and a URL valid that long.

The input is a clip made with ffmpeg (lavfi testsrc2 and a sine, 720p25 H.264 at 6 Mb/s
and AAC), in two layouts with the same bytes otherwise: moov at the end (ffmpeg's
default) and faststart (remuxed with -movflags +faststart). Each is uploaded with boto3
to a harness.S3: s3rver behind tests/support/s3proxy.py, which checks every signature
and logs every request. The clients reach the proxy through a TCP relay of this script
(the URLs are presigned for the relay's address), which counts the bytes it delivers
to them; the requests are counted in the proxy's log.

Three measures, each per layout and approach:
  first frame   how long until the first video frame is decoded: A the copy (HEAD +
                GET) plus ffprobe decoding one frame from the file; B ffprobe decoding
                one frame from the URL (this is where moov-at-end costs B requests).
  read all      the input alone: ffmpeg demuxing every packet to the null muxer
                (-c copy), nothing decoded; A adds its copy.
  job           the input side of a spool-video job: a probe (ffprobe -show_format
                -show_streams, as sp_video_probe) and a transcode with the mp4-480p
                preset's settings (scale to 480 lines, libx264 veryfast crf 24, AAC 96k),
                each opening the input as spool's job does; A adds its copy.
Every step runs BENCH_RUNS times (default 3), the approaches in a rotating order within
each run so that a change of load on the machine falls on all of them; the table gives
the median and the spread (max - min) of the wall times, and the requests and bytes of
the median run, and the median CPU seconds of the clients (curl, ffprobe, ffmpeg:
"client cpu") and of the store's side on this machine (s3rver, the proxy and the relay:
"store cpu"), which a real store would not take from the worker. The last line compares
A with B's defaults (not the fastest B, which would favour B by chance alone) and calls
a difference no larger than the spread no difference. The outputs of
every transcode are compared (same bytes expected).

Loopback has no latency and no bandwidth limit, which flatters B (its requests cost
nothing) and A (its copy is fast) alike. BENCH_VIDEO_INPUT_LATENCY_MS adds that much
before each request's first byte and again for each new connection (as a TCP and TLS
handshake would); BENCH_VIDEO_INPUT_MBPS caps each connection's download (MB/s), as a
store far away would.

Environment: BENCH_RUNS (3), BENCH_VIDEO_INPUT_SECONDS (45, the clip's length),
BENCH_VIDEO_INPUT_LATENCY_MS (0), BENCH_VIDEO_INPUT_MBPS (0: no cap).
"""
import hashlib
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from harness import S3, wait_until  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
SECONDS = int(os.environ.get("BENCH_VIDEO_INPUT_SECONDS", "45"))
LATENCY = float(os.environ.get("BENCH_VIDEO_INPUT_LATENCY_MS", "0")) / 1000
MBPS = float(os.environ.get("BENCH_VIDEO_INPUT_MBPS", "0"))
TICKS = os.sysconf("SC_CLK_TCK")

LAYOUTS = (("moov-end", []), ("faststart", ["-movflags", "+faststart"]))
# Approach name -> libavformat input options over HTTP (None: the local copy).
APPROACHES = (("A local copy", None), ("B ranged, defaults", []),
              ("B ranged, -seekable 1", ["-seekable", "1"]),
              ("B ranged, keep-alive", ["-multiple_requests", "1"]))
# The mp4-480p preset (common/presets.c) as ffmpeg options, the same for every approach.
MEASURES = (("first", "first frame: ffprobe decodes the first video frame"),
            ("read", "read all: ffmpeg -c copy -f null, every packet demuxed, nothing decoded"),
            ("job", "job: probe (ffprobe -show_streams) + transcode with mp4-480p's settings"))
TRANSCODE = ["-vf", "scale=-2:480:flags=bicubic", "-c:v", "libx264", "-preset", "veryfast",
             "-crf", "24", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "96k", "-ar", "48000",
             "-movflags", "+faststart"]


class Relay:
    """A TCP relay on a loopback port in front of the S3 proxy: counts connections,
    requests (request heads in what clients send: body-less GETs and HEADs only) and
    the bytes it delivers to clients; optionally delays each new connection and each
    request by `latency` seconds and caps each connection's download at `mbps` MB/s."""

    def __init__(self, target_host, target_port, latency=0.0, mbps=0.0):
        self.target = (target_host, target_port)
        self.latency, self.mbps = latency, mbps
        self.lock = threading.Lock()
        self.conns = self.requests = self.down = self.active = 0
        self.ranges = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.endpoint = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def snapshot(self):
        """(connections, requests, bytes down, [Range headers]) so far, once every
        connection the last client opened is closed (at most 5 s)."""
        try:
            wait_until(lambda: self.active == 0, 5, 0.01, what="relay connections to close")
        except AssertionError:
            pass
        with self.lock:
            return self.conns, self.requests, self.down, list(self.ranges)

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.conns += 1
                self.active += 1
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, client):
        try:
            if self.latency:
                time.sleep(self.latency)
            up = socket.create_connection(self.target)
        except OSError:
            client.close()
            with self.lock:
                self.active -= 1
            return
        t = threading.Thread(target=self._pump_up, args=(client, up), daemon=True)
        t.start()
        self._pump_down(up, client)
        t.join()
        for s in (client, up):
            s.close()
        with self.lock:
            self.active -= 1

    def _pump_up(self, src, dst):
        head = b""
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                head += data
                while b"\r\n\r\n" in head:
                    req, head = head.split(b"\r\n\r\n", 1)
                    m = re.search(rb"(?im)^range:\s*(\S+)", req)
                    with self.lock:
                        self.requests += 1
                        self.ranges.append(m.group(1).decode() if m else "-")
                    if self.latency:
                        time.sleep(self.latency)
                dst.sendall(data)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _pump_down(self, src, dst):
        start, sent = time.monotonic(), 0
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if self.mbps:
                    ahead = start + sent / (self.mbps * 1e6) - time.monotonic()
                    if ahead > 0:
                        time.sleep(ahead)
                dst.sendall(data)
                sent += len(data)
                with self.lock:
                    self.down += len(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.sock.close()


def run(argv):
    t = time.monotonic()
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=1800)
    took = time.monotonic() - t
    if p.returncode != 0:
        raise SystemExit(f"bench-video-input: {argv[0]} failed ({p.returncode}): "
                         f"{p.stderr.decode(errors='replace')[-2000:]}")
    return took, p.stdout


def make_input(path, faststart_path):
    run(["ffmpeg", "-nostdin", "-y", "-v", "error",
         "-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate=25:duration={SECONDS}",
         "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={SECONDS}",
         "-c:v", "libx264", "-preset", "veryfast", "-b:v", "6M", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-b:a", "128k", "-shortest", path])
    run(["ffmpeg", "-nostdin", "-y", "-v", "error", "-i", path, "-c", "copy",
         "-movflags", "+faststart", faststart_path])


def first_frame(src, opts):
    return ["ffprobe", "-v", "error", *opts, "-select_streams", "v:0", "-read_intervals", "%+#1",
            "-show_entries", "frame=pts_time", "-of", "csv=p=0", src]


def read_all(src, opts):
    return ["ffmpeg", "-nostdin", "-v", "error", *opts, "-i", src, "-map", "0", "-c", "copy",
            "-f", "null", "-"]


def probe(src, opts):
    return ["ffprobe", "-v", "error", *opts, "-print_format", "json", "-show_format",
            "-show_streams", src]


def transcode(src, opts, out):
    return ["ffmpeg", "-nostdin", "-y", "-v", "error", *opts, "-i", src, *TRANSCODE, out]


class Bench:
    def __init__(self, s3, relay, tmp):
        self.s3, self.relay, self.tmp = s3, relay, tmp
        import boto3
        from botocore.config import Config
        # Presigned for the relay's address (the Host header is signed).
        self.signer = boto3.session.Session().client(
            "s3", endpoint_url=relay.endpoint, region_name=s3.region,
            aws_access_key_id=s3.access_key, aws_secret_access_key=s3.secret_key,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))

    def url(self, key, op="get_object"):
        return self.signer.generate_presigned_url(op, Params={"Bucket": self.s3.bucket, "Key": key},
                                                  ExpiresIn=3600)

    def proxy_requests(self):
        """(GETs, HEADs) the proxy has answered so far (its access log)."""
        log = self.s3.proxy.output()
        return (len(re.findall(r'"GET /\S+ HTTP/1\.1" \d{3}', log)),
                len(re.findall(r'"HEAD /\S+ HTTP/1\.1" \d{3}', log)))

    def store_cpu(self):
        """CPU seconds used so far by the store's side: s3rver, the proxy and this
        process (the relay's threads)."""
        total = sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
        for pid in (self.s3.s3rver.pid, self.s3.proxy.pid):
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / TICKS
        return total

    def measured(self, steps):
        """Run steps (argv lists) one after another: {s: wall seconds, cpu: the CPU
        seconds of the steps' processes, store_cpu: of the store's side, gets, heads:
        requests at the proxy, conns, reqs: connections and requests at the relay,
        bytes: delivered by the relay, ranges: Range headers asked}."""
        c0, r0, d0, rg0 = self.relay.snapshot()
        g0, h0 = self.proxy_requests()
        cpu0, store0 = sum(resource.getrusage(resource.RUSAGE_CHILDREN)[:2]), self.store_cpu()
        took = sum(run(argv)[0] for argv in steps)
        c1, r1, d1, rg1 = self.relay.snapshot()
        g1, h1 = self.proxy_requests()
        cpu1, store1 = sum(resource.getrusage(resource.RUSAGE_CHILDREN)[:2]), self.store_cpu()
        return {"s": took, "cpu": cpu1 - cpu0, "store_cpu": store1 - store0, "gets": g1 - g0,
                "heads": h1 - h0, "conns": c1 - c0, "reqs": r1 - r0, "bytes": d1 - d0,
                "ranges": rg1[len(rg0):]}

    def one(self, key, opts, out):
        """One run of one approach on one object: {measure: measured(...)} for each of
        MEASURES; the local copy's figures include the copy (HEAD and GET), made once."""
        if opts is not None:
            url = self.url(key)
            return {"first": self.measured([first_frame(url, opts)]),
                    "read": self.measured([read_all(url, opts)]),
                    "job": self.measured([probe(url, opts), transcode(url, opts, out)])}
        local = os.path.join(self.tmp, "copy.mp4")
        copy = self.measured([["curl", "-sS", "-f", "-I", "-o", "/dev/null", self.url(key, "head_object")],
                              ["curl", "-sS", "-f", "-o", local, self.url(key)]])
        res = {"first": self.measured([first_frame(local, [])]),
               "read": self.measured([read_all(local, [])]),
               "job": self.measured([probe(local, []), transcode(local, [], out)])}
        os.unlink(local)
        for m in res.values():
            for k in ("s", "cpu", "store_cpu", "gets", "heads", "conns", "reqs", "bytes"):
                m[k] += copy[k]
            m["ranges"] = copy["ranges"]
            m["copy_s"] = copy["s"]
        return res


def md5(path):
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def median_run(rows, what):
    """The run whose wall time is the median (the lower one of an even count)."""
    ordered = sorted(rows, key=lambda r: r[what]["s"])
    return ordered[(len(ordered) - 1) // 2][what]


def main():
    tmp = tempfile.mkdtemp(prefix="spool-bench-video-input-")
    s3 = relay = None
    try:
        load0 = os.getloadavg()
        end, fast = os.path.join(tmp, "in-moov-end.mp4"), os.path.join(tmp, "in-faststart.mp4")
        make_input(end, fast)
        size = os.path.getsize(end)
        s3 = S3()
        c = s3.client()
        keys = {}
        for (layout, _), path in zip(LAYOUTS, (end, fast)):
            keys[layout] = f"inputs/{layout}.mp4"
            c.upload_file(path, s3.bucket, keys[layout])
        host, port = s3.endpoint[len("http://"):].rsplit(":", 1)
        relay = Relay(host, int(port), LATENCY, MBPS)
        b = Bench(s3, relay, tmp)
        results = {(lay, name): [] for lay, _ in LAYOUTS for name, _ in APPROACHES}
        outputs = {}
        for r in range(RUNS):
            for layout, _ in LAYOUTS:
                order = APPROACHES[r % len(APPROACHES):] + APPROACHES[:r % len(APPROACHES)]
                for name, opts in order:
                    out = os.path.join(tmp, "out.mp4")
                    results[(layout, name)].append(b.one(keys[layout], opts, out))
                    outputs.setdefault(md5(out), []).append(f"{layout}/{name}")
                    os.unlink(out)
                    print(f"  run {r + 1}/{RUNS} {layout:9s} {name:22s} job "
                          f"{results[(layout, name)][-1]['job']['s']:6.2f} s", file=sys.stderr, flush=True)
        refused = s3.requests_refused(auth_only=False)
        load1 = os.getloadavg()

        net = "loopback" + (f", +{LATENCY * 1000:.0f} ms per request and per connection" if LATENCY else "") + \
              (f", {MBPS:g} MB/s per connection" if MBPS else "")
        print(f"bench-video-input: {SECONDS} s 720p25 H.264 6 Mb/s + AAC, {size / 1e6:.1f} MB; s3rver behind "
              f"s3proxy ({net}); {RUNS} runs")
        print("median and spread (max - min) of the wall times; of the median run: GET, HEAD (requests the "
              "proxy answered), conn (connections), MB (delivered to the client); median CPU seconds of the "
              "clients and of the store's side (s3rver, proxy, relay). A's figures include its copy.")
        print(f"load average {load0[0]:.1f} at the start, {load1[0]:.1f} at the end "
              f"({os.cpu_count()} CPUs)")
        summary = {}
        for what, title in MEASURES:
            print(f"\n{title}")
            hdr = (f"{'layout':9s}  {'approach':22s} {'median s':>9s} {'spread':>7s} {'GET':>4s} {'HEAD':>4s} "
                   f"{'conn':>4s} {'MB':>6s} {'client cpu':>10s} {'store cpu':>9s}")
            print(hdr)
            print("-" * len(hdr))
            for layout, _ in LAYOUTS:
                for name, _ in APPROACHES:
                    rows = [x[what] for x in results[(layout, name)]]
                    secs = [x["s"] for x in rows]
                    med, spread = statistics.median(secs), max(secs) - min(secs)
                    summary[(what, layout, name)] = (med, spread)
                    r = sorted(rows, key=lambda x: x["s"])[(len(rows) - 1) // 2]
                    copy = f"  (copy {statistics.median(x['copy_s'] for x in rows):.2f} s)" if "copy_s" in r else ""
                    print(f"{layout:9s}  {name:22s} {med:9.3f} {spread:7.3f} {r['gets']:4d} {r['heads']:4d} "
                          f"{r['conns']:4d} {r['bytes'] / 1e6:6.1f} {statistics.median(x['cpu'] for x in rows):10.2f} "
                          f"{statistics.median(x['store_cpu'] for x in rows):9.2f}{copy}")
        print()
        for layout, _ in LAYOUTS:
            r = median_run(results[(layout, "B ranged, defaults")], "job")
            print(f"ranges of B defaults' job on {layout} ({len(r['ranges'])}): " + " ".join(r["ranges"][:12]) +
                  (" ..." if len(r["ranges"]) > 12 else ""))
        if len(outputs) != 1:
            print("WARNING: the transcodes' outputs differ: " +
                  "; ".join(f"{h[:8]} {', '.join(v)}" for h, v in outputs.items()))
        else:
            print(f"every transcode wrote the same {RUNS * len(LAYOUTS) * len(APPROACHES)} outputs (md5)")
        mismatch = [f"{k[0]}/{k[1]}" for k, rows in results.items() for x in rows for w in ("first", "job")
                    if x[w]["reqs"] != x[w]["gets"] + x[w]["heads"]]
        if mismatch:
            print("WARNING: the relay and the proxy counted different requests: " + ", ".join(sorted(set(mismatch))))
        if refused:
            print(f"WARNING: the proxy refused {len(refused)} requests: {refused[:3]}")

        # A against B with ffmpeg's defaults (picking the fastest of the B variants
        # would favour B by chance alone).
        verdict = []
        for what, title in reversed(MEASURES):
            parts = []
            for layout, _ in LAYOUTS:
                a, a_sp = summary[(what, layout, "A local copy")]
                b, b_sp = summary[(what, layout, "B ranged, defaults")]
                noise = max(a_sp, b_sp)
                if RUNS < 2:
                    said = "one run, no spread to judge by"
                elif abs(a - b) <= noise:
                    said = "no difference beyond the spread"
                else:
                    said = f"{'A' if a < b else 'B'} faster by {abs(a - b) / max(a, b) * 100:.0f}%"
                parts.append(f"{layout} {said} (A {a:.2f} s, B {b:.2f} s, spread {noise:.2f} s)")
            verdict.append(f"{title.split(':')[0]}: " + ", ".join(parts))
        print("verdict: " + "; ".join(verdict))
    finally:
        if relay:
            relay.close()
        if s3:
            s3.destroy()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
