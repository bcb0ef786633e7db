#!/usr/bin/env python3
"""make bench-video: spool-video against the `ffmpeg` command, side by side in one run.

Input: a 20 s 1280x720 30 fps clip with stereo sound, made here by the ffmpeg command.
Two cases, each a preset of common/presets.c (read from that file, not copied here):
  mp4-480p  720p to 854x480: the scaler does real work (the default case)
  mp4-720p  720p to 720p: the scale filter passes the pictures through
Each round runs, for each case, one after the other:
  ffmpeg  the ffmpeg command with the worker's settings for the preset: the same filter
          chain (scale=w=W:h=H:flags=bicubic,format=pix_fmts=yuv420p, plus setsar=1,
          metadata only, because spool-video keeps the input's square pixels where the
          scale filter would write 1280:1281 at 854x480), libx264 -preset/-crf from the
          preset, the same threads (SPOOL_VIDEO_THREADS, default auto), AAC at the
          preset's bitrate and rate, stereo, +faststart
  job     a real job through Redis and the spool-video binary (thumbnail off: the
          ffmpeg command makes no poster); its wall time is the job's
          started_at..finished_at: probe, transcode, the output's probe, fsync and commit
  direct  the transcoder alone (bench_video_tool transcode), no Redis, no probes
For each: wall time, CPU time (user + sys) and peak RSS of the process that does the
work. ffmpeg and direct are children of this script, measured whole (start-up included)
with os.wait4: their own rusage, not this script's. The job's process is the long-lived
spool-video: CPU from /proc/PID/stat before and after the job, peak RSS from VmHWM,
reset before each job (/proc/PID/clear_refs) to the resident size the worker kept from
earlier jobs (freed heap glibc holds on to: its mmap threshold rises after the first
job's large frames are freed), so from the second job on it reads some 10-20 MB above
the first job's. The order alternates between rounds (cases and sides mirrored, ABBA)
so a load that drifts favours no side.

Prints, per case, the median of each measure with the spread (min-max) of the wall
time, the ratios spool/ffmpeg, whether the outputs are the same bytes (the H.264
stream with its SPS/PPS, the AAC stream, the whole files: the proof that both did the
same work), and a one-line verdict (its wall ratio is the median of the ratios within
each round, where both ran back to back under the same load); the share of the cores
other work took in each round and in all (the host's CPU seconds from /proc/stat less
this benchmark's own, plus steal: the load average, printed before and after, counts
x264's own threads and cannot tell); a wall time measured beside other work says little,
its CPU time more.

ru_maxrss of a child cannot read below the high-water mark of the process that
started it (the kernel carries the parent's into a vforked child at exec): the script
prints that floor, measured with /bin/true, and every figure is checked against it.

Environment: BENCH_ROUNDS (default 5), BENCH_PRESETS (default mp4-480p,mp4-720p),
BENCH_SECONDS (default 20), SPOOL_VIDEO_THREADS (passed to both; default auto).
"""
import json
import math
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
from harness import BIN, ROOT, Proc, Redis, wait_until  # noqa: E402

TEST_BIN = os.environ.get("SPOOL_TEST_BIN_DIR", os.path.join(ROOT, "build/release/tests"))
TOOL = os.path.join(TEST_BIN, "bench_video_tool")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
CASES = os.environ.get("BENCH_PRESETS", "mp4-480p,mp4-720p").split(",")
SECONDS = float(os.environ.get("BENCH_SECONDS", "20"))
THREADS = os.environ.get("SPOOL_VIDEO_THREADS", "0")
IN_W, IN_H, FPS = 1280, 720, 30
SIDES = ("ffmpeg", "job", "direct")
LABELS = {"ffmpeg": "ffmpeg command", "job": "spool-video job", "direct": "transcoder only"}


def read_presets():
    """The preset table of common/presets.c: name -> its fields."""
    with open(os.path.join(ROOT, "common", "presets.c")) as f:
        src = f.read()
    q = r'\s*"([^"]*)",'
    n = r"\s*(\d+),"
    row = re.compile(r"\{" + q * 6 + n * 2 + q + n * 2 + r"\s*(\d+)\s*\}")
    out = {}
    for m in row.finditer(src):
        name, container, _ext, _ctype, vcodec, acodec = m.groups()[:6]
        out[name] = dict(container=container, vcodec=vcodec, acodec=acodec,
                         height=int(m.group(7)), crf=int(m.group(8)), speed=m.group(9),
                         abr=int(m.group(10)), arate=int(m.group(11)))
    return out


def out_size(height):
    """sp_video_output_size for the landscape input (lround, as the C code)."""
    s = max(2, min(IN_H, height) & ~1)
    return max(2, 2 * int(math.floor(IN_W * s / IN_H / 2 + 0.5))), s


def run(argv, env=None):
    full = dict(os.environ)
    full.update(env or {})
    p = subprocess.run(argv, env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise SystemExit(f"{argv[0]} failed: {p.stderr.decode()[-2000:]}")
    return p.stdout.decode()


def measured(argv, tmp):
    """Run argv as a child; its wall time (spawn to reaped), CPU (its own user + sys) and
    peak RSS (ru_maxrss, KiB) from wait4, and its stdout."""
    with open(os.path.join(tmp, "out"), "w+b") as out, \
            open(os.path.join(tmp, "err"), "w+b") as err:
        t0 = time.monotonic()
        p = subprocess.Popen(argv, stdout=out, stderr=err)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.monotonic() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if p.returncode != 0:
            raise SystemExit(f"{argv[0]} failed ({p.returncode}): "
                             f"{err.read().decode()[-2000:]}")
        return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss, out.read().decode()


def proc_cpu(pid):
    """utime + stime of a running process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_hwm(pid):
    """VmHWM of a running process, in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise SystemExit(f"no VmHWM for {pid}")


def host_cpu():
    """CPU seconds the host's processes have used (user, nice, system, irq, softirq), and
    the seconds the hypervisor gave this VM's cores to others (steal)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    tick = os.sysconf("SC_CLK_TCK")
    return (v[0] + v[1] + v[2] + v[5] + v[6]) / tick, v[7] / tick


def own_cpu(*pids):
    """CPU seconds of this script, its reaped children and the running processes pids."""
    me, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return (me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime +
            sum(proc_cpu(p) for p in pids))


class Others:
    """The share of the cores that work other than this benchmark's took over a span:
    the host's CPU seconds less this benchmark's, plus steal."""

    def __init__(self, *pids):
        self.pids = pids
        self.busy = self.span = 0.0

    def start(self):
        self.t0, (self.h0, self.s0), self.o0 = time.monotonic(), host_cpu(), own_cpu(*self.pids)

    def stop(self):
        """The share since start(), 0 to 1; also added to the running total."""
        span = (time.monotonic() - self.t0) * os.cpu_count()
        (h, st), o = host_cpu(), own_cpu(*self.pids)
        busy = max(0.0, (h - self.h0) - (o - self.o0)) + (st - self.s0)
        self.busy += busy
        self.span += span
        return busy / span if span > 0 else 0.0


def stream_md5(path, spec, bsf=()):
    return run(["ffmpeg", "-v", "error", "-i", path, "-map", spec, "-c", "copy", *bsf,
                "-f", "md5", "-"]).strip()


def bytes_differing(a, b):
    """How many bytes differ between two files (None when their sizes do)."""
    if os.path.getsize(a) != os.path.getsize(b):
        return None
    n = 0
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            ca, cb = fa.read(1 << 16), fb.read(1 << 16)
            if not ca:
                return n
            if ca != cb:
                n += sum(x != y for x, y in zip(ca, cb))


def ffmpeg_cmd(clip, out, p, w, h):
    return ["ffmpeg", "-y", "-v", "error", "-nostdin", "-nostats", "-i", clip,
            "-map", "0:v:0", "-map", "0:a:0",
            "-vf", f"scale=w={w}:h={h}:flags=bicubic,setsar=1,format=pix_fmts=yuv420p",
            "-c:v", "libx264", "-preset", p["speed"], "-crf", str(p["crf"]),
            "-threads", THREADS,
            "-c:a", "aac", "-b:a", str(p["abr"]), "-ar", str(p["arate"]), "-ac", "2",
            "-movflags", "+faststart", out]


def fmt_load(la):
    return " ".join(f"{x:.2f}" for x in la)


def main():
    presets = read_presets()
    for c in CASES:
        p = presets.get(c)
        if p is None or (p["vcodec"], p["acodec"], p["container"]) != ("libx264", "aac", "mp4"):
            raise SystemExit(f"BENCH_PRESETS: {c} is not an H.264/AAC MP4 preset of "
                             f"common/presets.c ({', '.join(presets)})")
    load_before = os.getloadavg()
    tmp = tempfile.mkdtemp(prefix="spool-bench-video-")
    clip = os.path.join(tmp, "clip.mp4")
    frames = int(SECONDS * FPS)
    print(f"bench-video: load average before {fmt_load(load_before)}; making a {SECONDS:g} s "
          f"{IN_W}x{IN_H} {FPS} fps clip with stereo sound...", flush=True)
    run(["ffmpeg", "-y", "-v", "error", "-f", "lavfi", "-i",
         f"testsrc2=size={IN_W}x{IN_H}:rate={FPS}:duration={SECONDS}", "-f", "lavfi", "-i",
         f"sine=frequency=440:sample_rate=48000:duration={SECONDS}", "-ac", "2",
         "-c:v", "libx264", "-preset", "fast", "-crf", "20", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-b:a", "192k", "-shortest", clip])

    redis = Redis()
    data = os.path.join(tmp, "data")
    env = {"SPOOL_REDIS_URL": redis.url, "SPOOL_DATA_DIR": data, "SPOOL_KEY_PREFIX": "bench:",
           "SPOOL_VIDEO_THREADS": THREADS, "SPOOL_LOG_LEVEL": "warn"}
    worker = Proc([os.path.join(BIN, "spool-video")], env=env, name="spool-video")
    # m[case][side] = lists of wall s, cpu s, peak RSS KiB
    m = {c: {s: {"wall": [], "cpu": [], "rss": []} for s in SIDES} for c in CASES}
    outs = {c: {} for c in CASES}
    size = {c: out_size(presets[c]["height"]) for c in CASES}
    try:
        def side_ffmpeg(c):
            out = os.path.join(tmp, f"ffmpeg-{c}.mp4")
            wall, cpu, rss, _ = measured(ffmpeg_cmd(clip, out, presets[c], *size[c]), tmp)
            outs[c]["ffmpeg"] = out
            return wall, cpu, rss

        def side_direct(c):
            out = os.path.join(tmp, f"direct-{c}.mp4")
            wall, cpu, rss, res = measured([TOOL, "transcode", clip, out, c, THREADS], tmp)
            res = json.loads(res)
            if (res["width"], res["height"]) != size[c] or res["frames"] != frames:
                raise SystemExit(f"{c}: the transcoder made {res['width']}x{res['height']}, "
                                 f"{res['frames']} frames; expected {size[c]}, {frames}")
            outs[c]["direct"] = out
            return wall, cpu, rss

        def side_job(c):
            pid = worker.pid
            with open(f"/proc/{pid}/clear_refs", "w") as f:
                f.write("5")  # VmHWM := VmRSS, so the peak is this job's
            c0 = proc_cpu(pid)
            job_id = run([TOOL, "enqueue", clip, "--params",
                          json.dumps({"preset": c, "thumbnail": False})], env).strip()
            job = {}

            def done():
                nonlocal job
                job = json.loads(run([TOOL, "get", job_id], env))
                return job["state"] in ("succeeded", "failed")

            # Poll slowly: the time comes from the job record, and a poll costs CPU the
            # worker would otherwise have (2 cores here).
            wait_until(done, 600, 1.0, "the benchmark job")
            if job["state"] != "succeeded":
                raise SystemExit(f"job failed: {job['error']}")
            outs[c]["job"] = os.path.join(data, "jobs", job_id[-2:], job_id, "video.mp4")
            return ((job["finished_at"] - job["started_at"]) / 1000.0, proc_cpu(pid) - c0,
                    proc_hwm(pid))

        run_side = {"ffmpeg": side_ffmpeg, "job": side_job, "direct": side_direct}
        others = Others(worker.pid, redis.proc.pid)
        for r in range(ROUNDS):
            mirror = r % 2 == 1
            for c in (CASES[::-1] if mirror else CASES):
                line = []
                others.start()
                for s in (SIDES[::-1] if mirror else SIDES):
                    wall, cpu, rss = run_side[s](c)
                    for k, v in (("wall", wall), ("cpu", cpu), ("rss", rss)):
                        m[c][s][k].append(v)
                    line.append(f"{s} {wall:.2f} s, cpu {cpu:.2f} s, {rss / 1024:.0f} MiB")
                line.append(f"other work {others.stop():.1%}")
                print(f"  round {r + 1} {c}: " + "; ".join(line), flush=True)
    finally:
        worker.stop()
        redis.destroy()

    # The floor under ru_maxrss: this script's own high-water mark, which only grows, so
    # measured after every child.
    floor = measured(["/bin/true"], tmp)[2]
    load_after = os.getloadavg()
    print()
    print(f"bench-video: {IN_W}x{IN_H} {FPS} fps, {frames} frames, median of {ROUNDS} rounds "
          f"on {os.cpu_count()} cores, threads {THREADS if THREADS != '0' else 'auto'}")
    for c in CASES:
        p, (w, h) = presets[c], size[c]
        med = {s: {k: statistics.median(v) for k, v in m[c][s].items()} for s in SIDES}
        f = med["ffmpeg"]
        print(f"{c}: to {w}x{h}, x264 {p['speed']} crf {p['crf']}, AAC {p['abr'] // 1000}k")
        print(f"  {'':16}{'wall s (min-max)':>19}{'fps':>7}{'cpu s':>8}{'peak RSS':>10}"
              f"{'wall':>7}{'cpu':>7}{'RSS':>7}")
        for s in SIDES:
            x = med[s]
            wall = m[c][s]["wall"]
            ratios = "" if s == "ffmpeg" else (
                f"{x['wall'] / f['wall']:6.2f}x{x['cpu'] / f['cpu']:6.2f}x"
                f"{x['rss'] / f['rss']:6.2f}x")
            print(f"  {LABELS[s]:16}{x['wall']:7.2f} ({min(wall):5.2f}-{max(wall):5.2f})"
                  f"{frames / x['wall']:7.1f}{x['cpu']:8.2f}{x['rss'] / 1024:6.0f} MiB {ratios}")
        same = []
        for what, spec, bsf in (("H.264 with SPS/PPS", "0:v", ("-bsf:v", "h264_mp4toannexb")),
                                ("AAC", "0:a", ())):
            ok = all(stream_md5(outs[c][s], spec, bsf) == stream_md5(outs[c]["ffmpeg"], spec,
                                                                      bsf)
                     for s in ("job", "direct"))
            same.append(f"{what} {'yes' if ok else 'NO'}")
        diff = bytes_differing(outs[c]["ffmpeg"], outs[c]["job"])
        if diff is None:
            same.append("files: sizes differ")
        elif diff:
            same.append(f"files: {diff} bytes differ" + (" (the encoder name ffmpeg writes in "
                                                         "the avc1 box)" if diff <= 32 else ""))
        else:
            same.append("files: identical")
        print(f"  same output as ffmpeg: {'; '.join(same)}")
        # Wall time judged by the ratio within each round (the job ran next to the ffmpeg
        # command, under the same load), CPU and RSS by the medians.
        per_round = [a / b for a, b in zip(m[c]["job"]["wall"], m[c]["ffmpeg"]["wall"])]
        jw = statistics.median(per_round)
        jc, jr = (med["job"][k] / f[k] for k in ("cpu", "rss"))
        if jw < 0.95:
            pace = f"{(1 - jw) * 100:.0f}% faster than ffmpeg"
        elif jw <= 1.05:
            pace = "at par with ffmpeg (within 5%)"
        else:
            pace = f"{(jw - 1) * 100:.0f}% slower than ffmpeg (target 5%: NOT met)"
        print(f"  verdict {c}: the spool-video job takes {jw:.2f}x ffmpeg's wall time (rounds "
              f"{min(per_round):.2f}-{max(per_round):.2f}x), {jc:.2f}x its CPU, {jr:.2f}x its "
              f"peak RSS: {pace}")
        low = [s for s in ("ffmpeg", "direct") if min(m[c][s]["rss"]) <= floor]
        if low:
            print(f"  peak RSS of {', '.join(low)} is not above this script's floor: unknown")
    print(f"peak RSS: ffmpeg and the transcoder by wait4 (ru_maxrss; cannot read below this "
          f"script's {floor / 1024:.0f} MiB), the job by the worker's VmHWM, reset per job")
    print(f"other work took {others.busy / others.span:.1%} of the cores during the rounds "
          f"(above a few %, trust CPU time over wall time)")
    print(f"load average (1, 5, 15 min) before {fmt_load(load_before)}, after "
          f"{fmt_load(load_after)} (x264's own threads count in it)")
    subprocess.run(["rm", "-rf", tmp])
    return 0


if __name__ == "__main__":
    sys.exit(main())
