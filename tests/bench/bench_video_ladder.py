#!/usr/bin/env python3
"""make bench-video, the ladder case: spool's single-decode HLS ladder beside the ffmpeg
command making the same ladder.

Input: a 1920x1080 30 fps clip with stereo sound (BENCH_LADDER_SECONDS, default 20),
made here by the ffmpeg command, so the `hls` preset makes four renditions (1080p,
720p, 480p, 360p) and an audio group. Three sides, each a child process of this script
measured whole with os.wait4 (wall, its own user + sys CPU, peak RSS):
  spool     bench_video_tool ladder: the transcoder's ladder (sp_video_ladder), one demux
            and one decode, each rendition on its own thread
  ffmpeg-1  one ffmpeg process: -filter_complex fps,format,split=N then scale per
            rendition (bicubic), one libx264 encode per rendition with the same settings
            (preset, CRF, maxrate/bufsize, GOP, keyint_min, scenecut=0) and the same
            threads per rendition that spool chose, AAC once, each to its own hls muxer
            (fMP4, the same segment length)
  ffmpeg-N  N separate ffmpeg runs one after the other, one rendition each (the first
            also the audio), each with the threads of SPOOL_VIDEO_THREADS (default auto:
            all the cores, as a worker running them one by one would); wall and CPU are
            the sums, peak RSS the largest
Rounds alternate the order of the sides (ABC, CBA...) so a drifting load favours none.
Prints the medians and the targets as PASS/MISS: spool's wall time no worse than 1.0x
ffmpeg-1's, and at least 1.5x faster than ffmpeg-N.

Environment: BENCH_ROUNDS (default 3), BENCH_LADDER_SECONDS (default 20),
SPOOL_VIDEO_THREADS (default 0: auto).
"""
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
from harness import ROOT  # noqa: E402

TEST_BIN = os.environ.get("SPOOL_TEST_BIN_DIR", os.path.join(ROOT, "build/release/tests"))
TOOL = os.path.join(TEST_BIN, "bench_video_tool")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SECONDS = float(os.environ.get("BENCH_LADDER_SECONDS", "20"))
THREADS = os.environ.get("SPOOL_VIDEO_THREADS", "0")
W, H, FPS = 1920, 1080, 30
SIDES = ("spool", "ffmpeg-1", "ffmpeg-N")


def read_ladder():
    """The hls preset's speed, audio bitrate, segment length and rungs, from
    common/presets.c (so the ffmpeg side follows the code)."""
    src = open(os.path.join(ROOT, "common/presets.c")).read()
    rungs = [tuple(map(int, m)) for m in
             re.findall(r"\{(\d+), (\d+), (\d+), (\d+)\}", src.split("sp__ladder[]")[1])
             if int(m[0]) > 0]
    m = re.search(r'\{"hls", "hls", "m3u8", "[^"]+", "libx264", "aac", (\d+), \d+,\s*'
                  r'"(\w+)", (\d+), (\d+), \d+, sp__ladder, (\d+)\}', src)
    if m is None:
        raise SystemExit("cannot read the hls preset from common/presets.c")
    return {"top": int(m.group(1)), "speed": m.group(2), "abr": int(m.group(3)),
            "arate": int(m.group(4)), "segment": int(m.group(5)), "rungs": rungs}


def measured(argv):
    t0 = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(argv, stdout=out, stderr=err)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.monotonic() - t0
        if os.waitstatus_to_exitcode(status) != 0:
            err.seek(0)
            raise SystemExit(f"{argv[0]} failed: {err.read().decode()[-2000:]}")
        out.seek(0)
        return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss, out.read().decode()


def hls_out(d, name, hls_time):
    os.makedirs(os.path.join(d, name), exist_ok=True)
    return ["-f", "hls", "-hls_time", f"{hls_time:.3f}", "-hls_playlist_type", "vod",
            "-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", "init.mp4",
            "-hls_segment_filename", os.path.join(d, name, "seg_%05d.m4s"),
            "-start_number", "1", "-hls_flags", "independent_segments",
            os.path.join(d, name, "index.m3u8")]


def x264(p, rung, gop, threads):
    _, crf, maxrate, bufsize = rung
    return ["-c:v", "libx264", "-preset", p["speed"], "-crf", str(crf), "-maxrate",
            str(maxrate), "-bufsize", str(bufsize), "-g", str(gop), "-keyint_min", str(gop),
            "-x264-params", "scenecut=0:open-gop=0", "-threads", str(threads)]


def audio(p):
    return ["-c:a", "aac", "-b:a", str(p["abr"]), "-ar", str(p["arate"]), "-ac", "2"]


def main():
    p = read_ladder()
    tmp = tempfile.mkdtemp(prefix="spool-bench-ladder-")
    clip = os.path.join(tmp, "clip.mp4")
    print(f"bench-video ladder: making a {SECONDS:g} s {W}x{H} {FPS} fps clip with stereo "
          f"sound...", flush=True)
    subprocess.run(["ffmpeg", "-y", "-v", "error", "-f", "lavfi", "-i",
                    f"testsrc2=size={W}x{H}:rate={FPS}:duration={SECONDS}", "-f", "lavfi",
                    "-i", f"sine=frequency=440:sample_rate=48000:duration={SECONDS}", "-ac", "2",
                    "-c:v", "libx264", "-preset", "fast", "-crf", "20", "-pix_fmt", "yuv420p",
                    "-c:a", "aac", "-b:a", "192k", "-shortest", clip], check=True)
    gop = round(2 * FPS)
    hls_time = (round(p["segment"] / 2) * gop - 0.5) / FPS
    # spool once, to learn its renditions and the threads it gave each
    d0 = os.path.join(tmp, "probe")
    os.makedirs(d0)
    info = json.loads(measured([TOOL, "ladder", clip, d0, "hls", THREADS])[3])
    rends = info["renditions"]
    rung_of = {r[0]: r for r in p["rungs"]}
    for r in rends:
        r["rung"] = rung_of[min(r["width"], r["height"])]
    desc = ", ".join(f"{r['name']} ({r['threads']} thr)" for r in rends)
    print(f"ladder: {desc}; x264 {p['speed']}, GOP {gop}, segments {hls_time:.2f} s", flush=True)

    def side_spool(d):
        return measured([TOOL, "ladder", clip, d, "hls", THREADS])[:3]

    def side_ffmpeg1(d):
        n = len(rends)
        graph = f"[0:v]fps={FPS},format=yuv420p,split={n}" + "".join(f"[s{i}]" for i in range(n))
        for i, r in enumerate(rends):
            graph += f";[s{i}]scale=w={r['width']}:h={r['height']}:flags=bicubic,setsar=1[o{i}]"
        argv = ["ffmpeg", "-y", "-v", "error", "-nostdin", "-nostats", "-i", clip,
                "-filter_complex", graph]
        for i, r in enumerate(rends):
            argv += ["-map", f"[o{i}]", "-an", *x264(p, r["rung"], gop, r["threads"]),
                     *hls_out(d, r["name"], hls_time)]
        argv += ["-map", "0:a:0", "-vn", *audio(p), *hls_out(d, "audio", hls_time)]
        return measured(argv)[:3]

    def side_ffmpegN(d):
        wall = cpu = rss = 0
        for i, r in enumerate(rends):
            argv = ["ffmpeg", "-y", "-v", "error", "-nostdin", "-nostats", "-i", clip,
                    "-map", "0:v:0", "-vf",
                    f"fps={FPS},scale=w={r['width']}:h={r['height']}:flags=bicubic,setsar=1,"
                    "format=yuv420p", *x264(p, r["rung"], gop, THREADS),
                    *hls_out(d, r["name"], hls_time)]
            if i == 0:
                argv += ["-map", "0:a:0", "-vn", *audio(p), *hls_out(d, "audio", hls_time)]
            w, c, m, _ = measured(argv)
            wall, cpu, rss = wall + w, cpu + c, max(rss, m)
        return wall, cpu, rss

    run = {"spool": side_spool, "ffmpeg-1": side_ffmpeg1, "ffmpeg-N": side_ffmpegN}
    m = {s: {"wall": [], "cpu": [], "rss": []} for s in SIDES}
    for k in range(ROUNDS):
        order = SIDES if k % 2 == 0 else tuple(reversed(SIDES))
        for s in order:
            d = tempfile.mkdtemp(dir=tmp)
            wall, cpu, rss = run[s](d)
            for key, v in (("wall", wall), ("cpu", cpu), ("rss", rss)):
                m[s][key].append(v)
            subprocess.run(["rm", "-rf", d])
        print(f"  round {k + 1}: " + ", ".join(f"{s} {m[s]['wall'][-1]:.2f} s" for s in SIDES),
              flush=True)
    med = {s: {k: statistics.median(v) for k, v in m[s].items()} for s in SIDES}
    frames = int(SECONDS * FPS)
    print(f"{'':10}{'wall s (min-max)':>19}{'fps':>7}{'cpu s':>8}{'peak RSS':>10}")
    for s in SIDES:
        x, w = med[s], m[s]["wall"]
        print(f"  {s:8}{x['wall']:7.2f} ({min(w):5.2f}-{max(w):5.2f}){frames / x['wall']:7.1f}"
              f"{x['cpu']:8.2f}{x['rss'] / 1024:6.0f} MiB")
    vs1 = med["spool"]["wall"] / med["ffmpeg-1"]["wall"]
    vsN = med["ffmpeg-N"]["wall"] / med["spool"]["wall"]
    print(f"target wall <= 1.0x ffmpeg-1: {vs1:.2f}x {'PASS' if vs1 <= 1.0 else 'MISS'}")
    print(f"target >= 1.5x faster than ffmpeg-N: {vsN:.2f}x {'PASS' if vsN >= 1.5 else 'MISS'}")
    print("peak RSS by wait4 (ru_maxrss), which cannot read below this script's own")
    subprocess.run(["rm", "-rf", tmp])
    return 0


if __name__ == "__main__":
    sys.exit(main())
