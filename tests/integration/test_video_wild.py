"""spool-video on the odd files real users upload ("inputs from the wild"), end to end:
each input is made here with the ffmpeg command (nothing downloaded), uploaded to a
real spool-api, transcoded by the real spool-video, and the job read back through the
API the way a client would (state, error code, message, retryable, metadata). Outputs
are downloaded from the API and checked with ffprobe, and where the picture matters,
with its pixels (ffmpeg's signalstats, idet, or a few grey values).

Cases: rotated phone video (display matrix 90/180/270), variable frame rate, odd sizes
(1079 px, 1x1, a header claiming 8K over a tiny stream, real 8K, past 8K), interlaced,
10-bit, HDR (PQ and HLG to SDR), audio only, video only, several audio tracks, a cut
MPEG-TS, a file whose name lies about its container, and an empty upload.
"""
import json
import math
import os
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BIN, LOOPBACK_ALLOW, SANITIZED, Proc, Redis, Suite, blob_store, eq,  # noqa: E402
                     ffprobe, serve_files, wait_until)
from test_api import ApiServer, multipart  # noqa: E402

WORKER = os.path.join(BIN, "spool-video")
SLOW = 3 if SANITIZED else 1

suite = Suite("video_wild")


class Ctx:
    pass


def ff(*args):
    subprocess.run(["ffmpeg", "-y", "-v", "error", "-nostdin", *args], check=True)


def clip(ctx, name, *args):
    """Make tmp/name with the ffmpeg command (args: everything between -y and the name)."""
    path = os.path.join(suite.tmp, name)
    ff(*args, path)
    return path


X264 = ["-c:v", "libx264", "-preset", "ultrafast"]
X265 = ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error"]


def lavfi(src):
    return ["-f", "lavfi", "-i", src]


def stream(probe, kind):
    for s in probe["streams"]:
        if s["codec_type"] == kind:
            return s
    return None


def streams(probe, kind):
    return [s for s in probe["streams"] if s["codec_type"] == kind]


# ---- the API side ------------------------------------------------------------------------

def upload(ctx, path, preset="mp4-480p", filename=None, ctype="video/mp4", thumbnail=True):
    """POST /v1/videos as a multipart form (the file under its own name, or filename);
    the job's id."""
    with open(path, "rb") as f:
        data = f.read()
    body, mp_type = multipart([("preset", preset, None, None),
                               ("thumbnail", "true" if thumbnail else "false", None, None),
                               ("file", data, filename or os.path.basename(path), ctype)])
    r = ctx.api.http.post("/v1/videos", body=body, headers={"Content-Type": mp_type})
    eq(r.status, 202, f"POST /v1/videos {path}: {r}")
    return r.json()["id"]


def job(ctx, job_id):
    r = ctx.api.http.get(f"/v1/jobs/{job_id}")
    eq(r.status, 200, f"GET /v1/jobs/{job_id}")
    return r.json()


def finished(ctx, job_id, timeout=60):
    """The job once it is succeeded, failed or cancelled (read through the API)."""
    got = {}

    def done():
        got["j"] = job(ctx, job_id)
        return got["j"]["state"] in ("succeeded", "failed", "cancelled")
    try:
        wait_until(done, timeout * SLOW, 0.05, f"job {job_id} to finish")
    except AssertionError:
        raise AssertionError(f"job {job_id} not finished: {got.get('j')}")
    return got["j"]


def succeeded(ctx, job_id, want_outputs=("video.mp4", "poster.jpg")):
    j = finished(ctx, job_id)
    eq(j["state"], "succeeded", f"state of {job_id} ({j['error']})")
    eq(j["error"], None, "error")
    eq(j["progress"], 100, "progress")
    eq(sorted(o["name"] for o in j["outputs"]), sorted(want_outputs), "outputs")
    return j


def failed(ctx, job_id, code, words):
    """The job failed permanently at its first attempt with code, its message saying
    words; returns the job."""
    j = finished(ctx, job_id)
    eq(j["state"], "failed", f"state of {job_id}")
    err = j["error"]
    eq(err["code"], code, f"error code ({err})")
    eq(err["retryable"], False, f"retryable ({err})")
    eq(j["attempts"], 1, "attempts (a permanent error is not retried)")
    for w in ([words] if isinstance(words, str) else words):
        assert w in err["message"], f"error message {err['message']!r} lacks {w!r}"
    eq(j["outputs"], [], "outputs of a failed job")
    return j


def download(ctx, job_id, name="video.mp4"):
    """The output, fetched from the API into a local file (its path)."""
    r = ctx.api.http.get(f"/v1/jobs/{job_id}/outputs/{name}")
    eq(r.status, 200, f"GET outputs/{name}")
    path = os.path.join(suite.tmp, f"out-{job_id}-{name}")
    with open(path, "wb") as f:
        f.write(r.body)
    return path


# ---- what the pictures and sound are -------------------------------------------------------

def grey_cells(path, n=4, at=0.5):
    """The picture at `at` seconds scaled (area average) to n x n grey values, rows top
    to bottom: where a bright patch is in the picture as a player shows it (the
    output carries no display matrix, so nothing turns it again here)."""
    out = subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-noautorotate", "-ss", str(at),
                          "-i", path, "-vf", f"scale={n}:{n}:flags=area,format=gray",
                          "-frames:v", "1", "-f", "rawvideo", "-"],
                         stdout=subprocess.PIPE, check=True).stdout
    eq(len(out), n * n, "grey cells")
    return [list(out[r * n:(r + 1) * n]) for r in range(n)]


def signal_stats(path):
    """Mean Y, U, V of the first picture (signalstats)."""
    out = subprocess.run(["ffmpeg", "-hide_banner", "-nostats", "-nostdin", "-i", path, "-vf",
                          "signalstats,metadata=print", "-frames:v", "1", "-f", "null", "-"],
                         stderr=subprocess.PIPE, check=True).stderr.decode()
    vals = {}
    for key in ("YAVG", "UAVG", "VAVG"):
        i = out.index(f"lavfi.signalstats.{key}=")
        vals[key] = float(out[i:].split("=", 1)[1].split()[0])
    return vals


def idet(path):
    """ffmpeg's interlace detector over the whole video: {"TFF", "BFF", "Progressive",
    "Undetermined"} picture counts (multi-frame detection)."""
    out = subprocess.run(["ffmpeg", "-hide_banner", "-nostats", "-nostdin", "-i", path, "-vf",
                          "idet", "-f", "null", "-"], stderr=subprocess.PIPE,
                         check=True).stderr.decode()
    line = [l for l in out.splitlines() if "Multi frame detection" in l][-1]
    words = line.split("Multi frame detection:")[1].replace(":", " ").split()
    return {words[i]: int(words[i + 1]) for i in range(0, len(words), 2)}


def frame_times(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "frame=pts_time", "-of", "csv=p=0", path],
                         stdout=subprocess.PIPE, check=True).stdout.decode()
    return [float(x.strip(",")) for x in out.split()]


def tone_hz(path, seconds=1.0):
    """The frequency of the (sine) sound in path: how often its first channel, decoded
    to 16-bit 48 kHz, swings from below -T to above T (T a quarter of its peak, so coding
    noise near zero does not count) over `seconds`."""
    raw = subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", path, "-map", "0:a:0",
                          "-ac", "1", "-ar", "48000", "-t", str(seconds), "-f", "s16le", "-"],
                         stdout=subprocess.PIPE, check=True).stdout
    samples = struct.unpack(f"<{len(raw) // 2}h", raw)
    t = max(abs(x) for x in samples) / 4
    assert t > 100, "silence"
    low, cycles = None, 0
    for x in samples:
        if x < -t:
            low = True
        elif x > t and low:
            low, cycles = False, cycles + 1
    return cycles / (len(samples) / 48000)


def preset_size(w, h, preset_height):
    """workers/video/README.md's output size: the short side is min(preset height,
    input's), made even by dropping a pixel; the long side keeps the aspect, even."""
    short, long_ = min(w, h), max(w, h)
    s = max(2, min(short, preset_height) // 2 * 2)
    l = max(2, 2 * math.floor(long_ * s / short / 2 + 0.5))
    return (l, s) if w >= h else (s, l)


# ---- set-up --------------------------------------------------------------------------------

def setup():
    ctx = Ctx()
    ctx.redis = Redis()
    ctx.blobs = blob_store(suite)
    ctx.api = ApiServer(suite, ctx.redis, blobs=ctx.blobs, env=LOOPBACK_ALLOW)
    env = {"SPOOL_REDIS_URL": ctx.redis.url, **ctx.blobs.env(), "SPOOL_LOG_LEVEL": "info",
           "SPOOL_CONCURRENCY": "2", "SPOOL_VIDEO_THREADS": "1",
           "SPOOL_RENEW_INTERVAL": "200ms", **LOOPBACK_ALLOW}
    ctx.worker = Proc([WORKER], env=env, name="spool-video", logdir=suite.tmp)
    ctx.files = serve_files(suite.tmp)
    ctx.files_url = f"http://127.0.0.1:{ctx.files.server_address[1]}"
    return ctx


def teardown(ctx):
    code = ctx.worker.stop()
    if code != 0:
        print(ctx.worker.output()[-3000:])
    ctx.api.stop()
    ctx.files.shutdown()
    ctx.redis.destroy()


# ---- tests ---------------------------------------------------------------------------------

@suite.test
def test_rotated_phone_video_comes_out_upright_at_90_180_270(ctx):
    """A 320x240 picture with a white patch at its top left as it should be seen, stored
    turned the other way with a display matrix saying to turn it back (as phones
    record). The ffmpeg command (autorotate) shows each clip with the patch at the top
    left; so must every output, at 320x240 and with no matrix left. (The "rotate" tag
    FFmpeg 5.1 writes turns counterclockwise: a clip tagged 90 is stored turned 90
    clockwise, and its rotation, clockwise as spool's metadata gives it, is 270.)"""
    upright = "color=c=black:s=320x240:r=10:d=1,drawbox=x=0:y=0:w=80:h=60:color=white:t=fill"
    stored = {90: "transpose=clock", 180: "hflip,vflip", 270: "transpose=cclock"}
    ids = {}
    for tag, vf in stored.items():
        turned = clip(ctx, f"turned{tag}.mp4", *lavfi(upright), "-vf", vf, *X264, "-pix_fmt",
                      "yuv420p")
        path = clip(ctx, f"rot{tag}.mp4", "-i", turned, "-c", "copy", "-metadata:s:v:0",
                    f"rotate={tag}")
        sv = stream(ffprobe(path), "video")
        matrix = [d for d in sv.get("side_data_list", []) if "rotation" in d]
        assert matrix, f"{tag}: the clip has no display matrix: {sv}"
        shown = subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", path, "-vf",
                                "scale=4:4:flags=area,format=gray", "-frames:v", "1", "-f",
                                "rawvideo", "-"], stdout=subprocess.PIPE, check=True).stdout
        assert shown[0] > 150 and shown[15] < 60, f"{tag}: ffmpeg shows the clip {list(shown)}"
        ids[tag] = upload(ctx, path)
    for tag, job_id in ids.items():
        j = succeeded(ctx, job_id)
        meta = j["metadata"]["input"]["video"]
        eq(meta["rotation"], (360 - tag) % 360, f"{tag}: metadata rotation (clockwise)")
        eq((meta["display_width"], meta["display_height"]), (320, 240), f"{tag}: display size")
        out = download(ctx, job_id)
        v = stream(ffprobe(out), "video")
        eq((v["width"], v["height"]), (320, 240), f"{tag}: output size")
        eq(v.get("side_data_list"), None, f"{tag}: display matrix left in the output")
        cells = grey_cells(out)
        assert cells[0][0] > 150, f"{tag}: top-left is not the white patch: {cells}"
        others = [c for r, row in enumerate(cells) for k, c in enumerate(row) if (r, k) != (0, 0)]
        assert max(others) < 60, f"{tag}: white outside the top left: {cells}"
        poster = grey_cells(download(ctx, job_id, "poster.jpg"), at=0)
        assert poster[0][0] > 150 and poster[3][3] < 60, f"{tag}: poster not upright: {poster}"


@suite.test
def test_variable_frame_rate_comes_out_constant_and_as_long(ctx):
    """Pictures 1/30 s apart, then 1/15 s, then closer: the output has one constant
    step and lasts as long as the input."""
    src = clip(ctx, "vfr.mp4", *lavfi("testsrc2=size=320x240:rate=30:duration=3"), "-vf",
               "setpts='if(lt(N,30),N,if(lt(N,60),30+(N-30)*2,90+(N-60)/2))/(30*TB)'",
               "-fps_mode", "vfr", *X264)
    steps = {round(b - a, 4) for a, b in zip(frame_times(src), frame_times(src)[1:])}
    assert len(steps) >= 2, f"the clip is not variable: steps {steps}"
    j = succeeded(ctx, upload(ctx, src))
    out = download(ctx, j["id"])
    times = frame_times(out)
    steps = {round(b - a, 4) for a, b in zip(times, times[1:])}
    eq(len(steps), 1, f"output frame steps {sorted(steps)}")
    v = stream(ffprobe(out), "video")
    din = float(stream(ffprobe(src), "video")["duration"])
    assert abs(float(v["duration"]) - din) <= 1 / 30 + 1e-3, f"duration {v['duration']} vs {din}"


@suite.test
def test_odd_sizes_come_out_even_and_never_upscaled(ctx):
    """1920x1079 (4:4:4, as 4:2:0 cannot be odd) at 1080p and 720p, and 1x1."""
    tall = clip(ctx, "h1079.mp4", *lavfi("testsrc2=size=1920x1080:rate=5:duration=1"), "-vf",
                "scale=1920:1079", *X264, "-pix_fmt", "yuv444p")
    eq(stream(ffprobe(tall), "video")["height"], 1079, "the 1079 px clip")
    one = clip(ctx, "one.mp4", *lavfi("testsrc2=size=32x32:rate=10:duration=1"), "-vf",
               "scale=1:1", *X264, "-pix_fmt", "yuv444p")
    eq((stream(ffprobe(one), "video")["width"], stream(ffprobe(one), "video")["height"]), (1, 1),
       "the 1x1 clip")
    cases = {("h1079", "mp4-1080p"): (tall, 1920, 1079, 1080),
             ("h1079", "mp4-720p"): (tall, 1920, 1079, 720),
             ("one", "mp4-480p"): (one, 1, 1, 480)}
    ids = {k: upload(ctx, path, preset=k[1]) for k, (path, *_rest) in cases.items()}
    for k, (path, w, h, ph) in cases.items():
        j = succeeded(ctx, ids[k])
        want = preset_size(w, h, ph)
        v = stream(ffprobe(download(ctx, ids[k])), "video")
        got = (v["width"], v["height"])
        eq(got, want, f"{k}: size")
        eq((got[0] % 2, got[1] % 2), (0, 0), f"{k}: even")
        eq(v["pix_fmt"], "yuv420p", f"{k}: pix_fmt")
        entry = {o["name"]: o for o in j["outputs"]}["video.mp4"]
        eq((entry["width"], entry["height"]), want, f"{k}: size in the outputs list")
    eq(preset_size(1920, 1079, 1080), (1918, 1078), "1079 rounds down to 1078")
    eq(preset_size(1, 1, 480), (2, 2), "1x1 becomes the smallest even size")


def patch_mp4_size(src, dst, w, h):
    """Copy src with the first track's header (tkhd) and sample entry (stsd avc1) saying
    w x h: the container claims a size its H.264 stream does not have."""
    with open(src, "rb") as f:
        d = bytearray(f.read())
    i = d.find(b"tkhd")
    end = i - 4 + struct.unpack(">I", d[i - 4:i])[0]
    d[end - 8:end] = struct.pack(">II", w << 16, h << 16)
    entry = d.find(b"avc1", d.find(b"stsd"))
    o = entry + 4 + 6 + 2 + 16
    d[o:o + 4] = struct.pack(">HH", w, h)
    with open(dst, "wb") as f:
        f.write(d)


@suite.test
def test_8k_claims_real_8k_and_past_8k(ctx):
    """A 64x36 stream in an MP4 whose headers say 7680x4320 gives 64x36 (the decoded
    size counts, nothing is upscaled); a real 7680x4320 stream (one grey second, a few
    kB) gives 1280x720 at mp4-720p; 8208 px wide is refused as past 8K."""
    tiny = clip(ctx, "tiny.mp4", *lavfi("testsrc2=size=64x36:rate=10:duration=1"), *X264,
                "-pix_fmt", "yuv420p")
    claims = os.path.join(suite.tmp, "claims8k.mp4")
    patch_mp4_size(tiny, claims, 7680, 4320)
    real = clip(ctx, "real8k.mp4", *lavfi("color=c=gray:s=7680x4320:r=2:d=1"), *X264,
                "-pix_fmt", "yuv420p")
    assert os.path.getsize(real) < 200_000, "the 8K clip is not tiny"
    wide = clip(ctx, "wide.mp4", *lavfi("color=c=gray:s=8208x16:r=5:d=1"), *X264,
                "-pix_fmt", "yuv420p")
    ids = {"claims": upload(ctx, claims, preset="mp4-720p"),
           "real": upload(ctx, real, preset="mp4-720p"),
           "wide": upload(ctx, wide, preset="mp4-720p")}
    succeeded(ctx, ids["claims"])
    v = stream(ffprobe(download(ctx, ids["claims"])), "video")
    eq((v["width"], v["height"]), (64, 36), "claims 8K: the stream's size")
    j = succeeded(ctx, ids["real"])
    eq((j["metadata"]["input"]["video"]["width"], j["metadata"]["input"]["video"]["height"]),
       (7680, 4320), "real 8K: metadata")
    v = stream(ffprobe(download(ctx, ids["real"])), "video")
    eq((v["width"], v["height"]), (1280, 720), "real 8K at mp4-720p")
    failed(ctx, ids["wide"], "unsupported_input", ["8208x16", "at most 8192"])


@suite.test
def test_interlaced_input_is_deinterlaced(ctx):
    """50 fields a second woven into 25 interlaced pictures (flagged top field first):
    the job says so in its metadata, and the output is progressive, by its flags and by
    ffmpeg's interlace detector, at the same 25 pictures a second."""
    src = clip(ctx, "interlaced.mp4", *lavfi("testsrc2=size=320x240:rate=50:duration=2"), "-vf",
               "tinterlace=mode=interleave_top,setfield=tff", *X264, "-flags", "+ildct+ilme",
               "-x264opts", "tff=1", "-pix_fmt", "yuv420p")
    sv = stream(ffprobe(src), "video")
    eq(sv["field_order"], "tt", "the clip's field order")
    d = idet(src)
    assert d["TFF"] > 0.8 * sum(d.values()), f"the clip does not look interlaced: {d}"
    j = succeeded(ctx, upload(ctx, src))
    eq(j["metadata"]["input"]["video"]["interlaced"], True, "metadata interlaced")
    out = download(ctx, j["id"])
    v = stream(ffprobe(out), "video")
    eq(v.get("field_order", "progressive"), "progressive", "output field order")
    eq(v["r_frame_rate"], "25/1", "output frame rate")
    d = idet(out)
    assert d["Progressive"] >= 0.8 * sum(d.values()), f"output still interlaced: {d}"
    eq(j["metadata"]["output"]["video"]["interlaced"], False, "output metadata")


TONEMAP = ("zscale=tin={tin}:min=2020_ncl:pin=2020:rin=limited:t=linear:npl=100,"
           "format=gbrpf32le,zscale=p=709,tonemap=tonemap=hable:desat=0,"
           "zscale=t=709:m=709:r=limited,format=yuv420p")


@suite.test
def test_10bit_and_hdr_become_8bit_sdr(ctx):
    """10-bit SDR H.264 (High 10) becomes 8-bit High. HDR10 (HEVC Main 10, BT.2020, PQ)
    and HLG become 8-bit BT.709 SDR through a tone map, tagged so; their pixels match
    the ffmpeg command's zscale + tonemap (Hable) on the same picture, and differ from
    a plain 10-to-8-bit conversion (which is what a missing tone map would give)."""
    have = subprocess.run(["ffmpeg", "-hide_banner", "-filters"], stdout=subprocess.PIPE,
                          check=True).stdout.decode()
    assert " zscale " in have and " tonemap " in have, "Debian's FFmpeg has zscale and tonemap"
    ten = clip(ctx, "ten.mp4", *lavfi("testsrc2=size=320x240:rate=10:duration=1"), *X264,
               "-pix_fmt", "yuv420p10le")
    eq(stream(ffprobe(ten), "video")["profile"], "High 10", "the 10-bit clip")
    hdr = {}
    for name, trc in (("pq", "smpte2084"), ("hlg", "arib-std-b67")):
        hdr[name] = clip(ctx, f"hdr_{name}.mp4", *lavfi("color=c=0x30C030:s=320x240:r=10:d=1"),
                         "-vf", "format=yuv420p10le", *X265, "-color_primaries", "bt2020",
                         "-color_trc", trc, "-colorspace", "bt2020nc")
    ids = {"ten": upload(ctx, ten), **{k: upload(ctx, p) for k, p in hdr.items()}}
    j = succeeded(ctx, ids["ten"])
    eq(j["metadata"]["input"]["video"]["bit_depth"], 10, "10-bit: metadata bit_depth")
    v = stream(ffprobe(download(ctx, ids["ten"])), "video")
    eq((v["pix_fmt"], v["profile"]), ("yuv420p", "High"), "10-bit: output")
    for name, trc in (("pq", "smpte2084"), ("hlg", "arib-std-b67")):
        j = succeeded(ctx, ids[name])
        meta = j["metadata"]["input"]["video"]
        eq((meta["hdr"], meta["color_transfer"], meta["bit_depth"]), (name, trc, 10),
           f"{name}: metadata")
        out = download(ctx, ids[name])
        v = stream(ffprobe(out), "video")
        eq((v["pix_fmt"], v.get("color_transfer"), v.get("color_primaries"),
            v.get("color_space")), ("yuv420p", "bt709", "bt709", "bt709"), f"{name}: output")
        ref = os.path.join(suite.tmp, f"ref_{name}.mp4")
        ff("-i", hdr[name], "-vf", TONEMAP.format(tin=trc), *X264, ref)
        naive = os.path.join(suite.tmp, f"naive_{name}.mp4")
        ff("-i", hdr[name], "-vf", "format=yuv420p", *X264, naive)
        got, want, plain = signal_stats(out), signal_stats(ref), signal_stats(naive)
        for k in want:
            assert abs(got[k] - want[k]) <= 3, f"{name}: {k} {got} vs the tone-mapped {want}"
        assert max(abs(plain[k] - want[k]) for k in want) > 10, \
            f"{name}: the test cannot tell a tone map ({want}) from none ({plain})"


@suite.test
def test_audio_only_fails_clearly_and_video_only_works(ctx):
    """Sound alone (AAC in .m4a, MP3) fails permanently as unsupported_input, saying
    it is audio only, with the probe in the metadata; at webm-720p too. Pictures alone
    give a video without a sound track, in MP4 and WebM."""
    m4a = clip(ctx, "sound.m4a", *lavfi("sine=frequency=440:duration=1"), "-c:a", "aac")
    mp3 = clip(ctx, "sound.mp3", *lavfi("sine=frequency=440:duration=1"), "-c:a", "libmp3lame")
    silent = clip(ctx, "silent.mp4", *lavfi("testsrc2=size=320x240:rate=10:duration=1"), *X264,
                  "-pix_fmt", "yuv420p")
    ids = {"m4a": upload(ctx, m4a),
           "mp3": upload(ctx, mp3, ctype="application/octet-stream"),
           "m4a-webm": upload(ctx, m4a, preset="webm-720p"),
           "silent": upload(ctx, silent),
           "silent-webm": upload(ctx, silent, preset="webm-720p")}
    for k, codec in (("m4a", "aac"), ("mp3", "mp3"), ("m4a-webm", "aac")):
        j = failed(ctx, ids[k], "unsupported_input", ["audio only", f"{codec} sound"])
        eq(j["metadata"]["input"]["video"], None, f"{k}: metadata video")
        eq(j["metadata"]["input"]["audio"]["codec"], codec, f"{k}: metadata audio")
    for k, name, vcodec in (("silent", "video.mp4", "h264"),
                            ("silent-webm", "video.webm", "vp9")):
        succeeded(ctx, ids[k], want_outputs=(name, "poster.jpg"))
        p = ffprobe(download(ctx, ids[k], name))
        eq(stream(p, "video")["codec_name"], vcodec, f"{k}: video codec")
        eq(streams(p, "audio"), [], f"{k}: sound track")


@suite.test
def test_several_audio_tracks_take_the_default_else_the_first(ctx):
    """Three tracks at 440, 880 and 1320 Hz. Marked default on the second: the output
    sounds at 880 Hz. None marked (Matroska, flags kept as they are), the second with
    more channels and a higher bitrate (which libav's own choice prefers): the first,
    440 Hz. One audio track is written either way."""
    v = lavfi("testsrc2=size=320x240:rate=10:duration=2")
    tones = [x for hz in (440, 880, 1320) for x in lavfi(f"sine=frequency={hz}:duration=2")]
    maps = ["-map", "0:v", "-map", "1:a", "-map", "2:a", "-map", "3:a"]
    default2 = clip(ctx, "tracks_default.mp4", *v, *tones, *maps, *X264, "-pix_fmt", "yuv420p",
                    "-c:a", "aac", "-disposition:a:0", "0", "-disposition:a:1", "default",
                    "-disposition:a:2", "0")
    dispo = [s["disposition"]["default"] for s in streams(ffprobe(default2), "audio")]
    eq(dispo, [0, 1, 0], "the clip's default flags")
    nodefault = clip(ctx, "tracks_none.mkv", *v, *tones, *maps, *X264, "-pix_fmt", "yuv420p",
                     "-c:a", "aac", "-b:a:0", "48k", "-b:a:1", "192k", "-ac:a:1", "6",
                     "-b:a:2", "48k", "-disposition:a", "0", "-default_mode", "passthrough")
    dispo = [s["disposition"]["default"] for s in streams(ffprobe(nodefault), "audio")]
    eq(dispo, [0, 0, 0], "the Matroska clip's default flags")
    ids = {"default": upload(ctx, default2),
           "none": upload(ctx, nodefault, ctype="video/x-matroska")}
    for k, hz in (("default", 880), ("none", 440)):
        j = succeeded(ctx, ids[k])
        out = download(ctx, ids[k])
        eq(len(streams(ffprobe(out), "audio")), 1, f"{k}: audio tracks written")
        got = tone_hz(out)
        assert abs(got - hz) < 20, f"{k}: the output sounds at {got:.0f} Hz, not {hz}"
        eq(j["metadata"]["input"]["audio"]["channels"], 1, f"{k}: metadata of the track taken")


def ts_cut_inside_a_frame(data):
    """A cut at a 188-byte packet boundary inside the 10th video picture: 5 packets
    after the start of its PES (ffmpeg's pictures here span about 16)."""
    starts = []
    for pos in range(0, len(data) - 187, 188):
        pkt = data[pos:pos + 188]
        assert pkt[0] == 0x47, f"lost sync at {pos}"
        pid = ((pkt[1] & 0x1F) << 8) | pkt[2]
        if pid == 0x100 and pkt[1] & 0x40:  # the video PID's payload unit starts
            starts.append(pos)
    return data[:starts[10] + 5 * 188]


@suite.test
def test_truncated_mpegts_fails_with_a_readable_reason(ctx):
    """MPEG-TS states no duration: a cut file is found by its last packet (cut inside
    the 188 bytes) or, cut at a packet boundary, by its last picture being incomplete.
    Both fail permanently as corrupt_input saying truncated; the whole file succeeds."""
    whole = clip(ctx, "whole.ts", *lavfi("testsrc2=size=320x240:rate=25:duration=2"),
                 *lavfi("sine=frequency=440:duration=2"), *X264, "-pix_fmt", "yuv420p",
                 "-c:a", "aac", "-f", "mpegts")
    with open(whole, "rb") as f:
        data = f.read()
    eq(len(data) % 188, 0, "the whole file is whole packets")
    cuts = {"mid_packet": data[:len(data) // 2 + 77], "at_packet": ts_cut_inside_a_frame(data)}
    ids = {"whole": upload(ctx, whole, ctype="video/mp2t")}
    for k, body in cuts.items():
        path = os.path.join(suite.tmp, f"cut_{k}.ts")
        with open(path, "wb") as f:
            f.write(body)
        ids[k] = upload(ctx, path, ctype="video/mp2t")
    j = succeeded(ctx, ids["whole"])
    v = stream(ffprobe(download(ctx, ids["whole"])), "video")
    assert abs(float(v["duration"]) - 2.0) <= 0.04 + 1e-3, f"whole: duration {v['duration']}"
    failed(ctx, ids["mid_packet"], "corrupt_input", ["truncated", "ends inside a packet"])
    failed(ctx, ids["at_packet"], "corrupt_input", ["truncated", "last picture is incomplete"])


@suite.test
def test_a_name_that_lies_about_the_container_is_ignored(ctx):
    """MPEG-TS uploaded as holiday.mp4 (video/mp4), WebM as clip.mov, MP4 as clip.webm:
    each is probed by its bytes and transcoded; the metadata names the real format."""
    base = lavfi("testsrc2=size=320x240:rate=10:duration=1")
    ts = clip(ctx, "lie_ts.bin", *base, *X264, "-pix_fmt", "yuv420p", "-f", "mpegts")
    webm = clip(ctx, "lie_webm.bin", *base, "-c:v", "libvpx-vp9", "-deadline", "realtime",
                "-cpu-used", "8", "-f", "webm")
    mp4 = clip(ctx, "lie_mp4.bin", *base, *X264, "-pix_fmt", "yuv420p", "-f", "mp4")
    cases = {"holiday.mp4": (ts, "mpegts", "video/mp4"),
             "clip.mov": (webm, "webm", "video/quicktime"),
             "clip.webm": (mp4, "mp4", "video/webm")}
    ids = {name: upload(ctx, path, filename=name, ctype=ctype)
           for name, (path, _, ctype) in cases.items()}
    for name, (path, real, _) in cases.items():
        j = succeeded(ctx, ids[name])
        eq(j["input"]["filename"], name, f"{name}: the upload's name, kept")
        got = j["metadata"]["input"]
        assert real in (got["container"], got["format"]), f"{name}: probed as {got}"
        v = stream(ffprobe(download(ctx, ids[name])), "video")
        eq((v["codec_name"], v["width"], v["height"]), ("h264", 320, 240), f"{name}: output")


@suite.test
def test_zero_byte_input_is_refused(ctx):
    """An empty upload never becomes a job: 422 invalid_field, raw body or multipart.
    An empty download (source_url) fails the job permanently as corrupt_input, saying
    the input is empty."""
    before = ctx.redis.cli("--scan", "--pattern", "spool:job:*")
    r = ctx.api.http.post("/v1/videos?preset=mp4-480p", body=b"",
                          headers={"Content-Type": "video/mp4"})
    eq(r.status, 422, f"raw empty body: {r}")
    eq(r.json()["error"]["code"], "invalid_field", "raw: error code")
    assert "empty" in r.json()["error"]["message"], r.json()
    body, ctype = multipart([("file", b"", "empty.mp4", "video/mp4")])
    r = ctx.api.http.post("/v1/videos", body=body, headers={"Content-Type": ctype})
    eq(r.status, 422, f"multipart empty file: {r}")
    eq(r.json()["error"]["code"], "invalid_field", "multipart: error code")
    eq(ctx.redis.cli("--scan", "--pattern", "spool:job:*"), before, "jobs made by empty uploads")
    open(os.path.join(suite.tmp, "empty.mp4"), "wb").close()
    r = ctx.api.http.post("/v1/videos", body={"source_url": ctx.files_url + "/empty.mp4",
                                             "preset": "mp4-480p"})
    eq(r.status, 202, f"source_url: {r}")
    failed(ctx, r.json()["id"], "corrupt_input", ["empty (0 bytes)"])


if __name__ == "__main__":
    sys.exit(suite.run(setup, teardown))
