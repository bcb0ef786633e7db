"""The HLS ladder end to end: clips made by the ffmpeg command here, uploaded to a real
spool-api, run by a real spool-video, the set read back over HTTP from the API the way a
player does (ffprobe and `ffmpeg -i http://.../master.m3u8`), in the blob store that
SPOOL_TEST_BLOBS names (a directory, or S3 through harness.S3).
"""
import json
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BIN, SANITIZED, Http, Proc, Redis, Skip, Suite, blob_store,  # noqa: E402
                     check_blob_stores, eq, make_clip, wait_until)

SLOW = 3 if SANITIZED else 1
suite = Suite("hls")


class Ctx:
    pass


def api_proc(ctx, **extra):
    """A spool-api on this suite's Redis and store (extra: more settings); (proc, port)."""
    env = {"SPOOL_REDIS_URL": ctx.redis.url, **ctx.blobs.env(), "SPOOL_LISTEN": "127.0.0.1:0",
           "SPOOL_LOG_LEVEL": "info", "SPOOL_API_THREADS": "2", **extra}
    api = Proc([os.path.join(BIN, "spool-api")], env=env, name="spool-api", logdir=suite.tmp)

    def started():
        m = re.search(r"\(port (\d+),", api.output())
        if m is None and not api.alive():
            raise AssertionError("spool-api exited:\n" + api.output())
        return m
    return api, int(wait_until(started, 20, what="spool-api to listen").group(1))


def start_api(ctx):
    ctx.api, ctx.port = api_proc(ctx)
    ctx.http = Http("127.0.0.1", ctx.port)
    ctx.base = f"http://127.0.0.1:{ctx.port}"


def setup():
    ctx = Ctx()
    ctx.redis = Redis()
    ctx.blobs = blob_store(suite).watch(ctx.redis)
    ctx.scratch = os.path.join(suite.tmp, "scratch")
    start_api(ctx)
    env = {"SPOOL_REDIS_URL": ctx.redis.url, **ctx.blobs.env(), "SPOOL_LOG_LEVEL": "info",
           "SPOOL_SCRATCH_DIR": ctx.scratch, "SPOOL_CONCURRENCY": "1",
           "SPOOL_MAINTAIN_INTERVAL": "100ms", "SPOOL_RENEW_INTERVAL": "200ms"}
    ctx.worker = Proc([os.path.join(BIN, "spool-video")], env=env, name="spool-video",
                      logdir=suite.tmp)
    t, c = suite.tmp, {}
    # 720p at 24 fps, 7 s: three renditions (720p, 480p, 360p), two segments each.
    c["hd"] = make_clip(os.path.join(t, "hd.mp4"), seconds=7, size="1280x720", rate=24)
    c["small"] = make_clip(os.path.join(t, "small.mp4"), seconds=2, size="320x240", rate=25)
    c["long"] = make_clip(os.path.join(t, "long.mp4"), seconds=40, size="1280x720", rate=30)
    # 11 s whose colour steps every 2 s (red up by 50, blue down by 40): sprite tiles.
    c["colours"] = os.path.join(t, "colours.mp4")
    subprocess.run(["ffmpeg", "-y", "-v", "error", "-f", "lavfi", "-i",
                    "color=c=black:s=320x180:r=25:d=11,format=rgb24,"
                    "geq=r='50*floor(T/2)':g='40':b='220-40*floor(T/2)'",
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                    c["colours"]], check=True)
    ctx.clips = c
    ctx.extra_procs = []
    ctx.jobs = {}
    return ctx


def teardown(ctx):
    for p in [ctx.worker, ctx.api] + ctx.extra_procs:
        code = p.stop()
        if code != 0:
            print(p.output()[-3000:])
    ctx.redis.destroy()


def submit(ctx, clip, preset="hls", thumbnail=True, sprite=None):
    with open(ctx.clips[clip], "rb") as f:
        body = f.read()
    q = f"preset={preset}&thumbnail={'true' if thumbnail else 'false'}"
    if sprite is not None:
        q += f"&sprite={'true' if sprite else 'false'}"
    r = ctx.http.post(f"/v1/videos?{q}", body=body, headers={"Content-Type": "video/mp4"})
    eq(r.status, 202, f"submit {r}")
    return r.json()["id"]


def wait_job(ctx, job_id, states=("succeeded", "failed", "cancelled"), timeout=90):
    job = {}

    def done():
        nonlocal job
        job = ctx.http.get(f"/v1/jobs/{job_id}").json()
        return job["state"] in states
    wait_until(done, timeout * SLOW, 0.1, f"job {job_id} in {states}")
    return job


def ladder_job(ctx, clip="hd"):
    """The clip's succeeded HLS job (made once, shared by the tests that read it)."""
    if clip not in ctx.jobs:
        job_id = submit(ctx, clip)
        job = wait_job(ctx, job_id)
        eq(job["state"], "succeeded", f"state ({job['error']})")
        ctx.jobs[clip] = job
    return ctx.jobs[clip]


def out_url(job, name):
    return f"/v1/jobs/{job['id']}/outputs/{name}"


def master_of(ctx, job):
    r = ctx.http.get(out_url(job, "hls/master.m3u8"))
    eq(r.status, 200, f"master {r}")
    text = r.body.decode()
    variants = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("#EXT-X-STREAM-INF:"):
            attrs = dict(re.findall(r'([A-Z-]+)=("[^"]*"|[^,]*)', line.split(":", 1)[1]))
            attrs = {k: v.strip('"') for k, v in attrs.items()}
            attrs["uri"] = lines[i + 1]
            variants.append(attrs)
    return text, variants


def ffprobe_url(url, *extra):
    p = subprocess.run(["ffprobe", "-v", "error", "-of", "json", *extra, url],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    if p.returncode != 0:
        raise AssertionError(f"ffprobe {url}: {p.stderr.decode()}")
    return json.loads(p.stdout)


def keyframes(url):
    probe = ffprobe_url(url, "-select_streams", "v", "-show_entries", "packet=pts_time,flags")
    return [round(float(p["pts_time"]), 3) for p in probe["packets"] if "K" in p["flags"]]


# ---- tests -----------------------------------------------------------------------------

@suite.test
def test_ladder_has_every_rendition_up_to_the_input_with_a_measured_master(ctx):
    job = ladder_job(ctx)
    eq(job["progress"], 100, "progress")
    eq(sorted(o["name"] for o in job["outputs"]),
       ["hls/master.m3u8", "hls/sprite.jpg", "hls/sprite.vtt", "poster.jpg"], "outputs")
    master = next(o for o in job["outputs"] if o["name"] == "hls/master.m3u8")
    eq(master["content_type"], "application/vnd.apple.mpegurl", "master content type")
    eq([r["name"] for r in master["renditions"]], ["720p", "480p", "360p"], "renditions")
    text, variants = master_of(ctx, job)
    assert '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aac"' in text, text
    eq([v["RESOLUTION"] for v in variants], ["1280x720", "854x480", "640x360"], "resolutions")
    for v in variants:
        url = ctx.base + out_url(job, "hls/" + v["uri"])
        s = ffprobe_url(url, "-show_streams")["streams"][0]
        eq((s["codec_name"], f"{s['width']}x{s['height']}"), ("h264", v["RESOLUTION"]),
           f"{v['uri']} stream")
        # CODECS: avc1.PPCCLL of what the encoder wrote (profile High = 0x64, its level)
        eq(v["CODECS"], f"avc1.64{0:02x}{s['level']:02x},mp4a.40.2", f"{v['uri']} CODECS")
        eq(v["FRAME-RATE"], "24.000", f"{v['uri']} FRAME-RATE")
        eq(v["AUDIO"], "aac", "audio group")
        peak, avg = int(v["BANDWIDTH"]), int(v["AVERAGE-BANDWIDTH"])
        assert 0 < avg <= peak, f"{v['uri']}: BANDWIDTH {peak} AVERAGE-BANDWIDTH {avg}"
        # measured: the playlist's segments' bytes over their durations, audio included
        media = ctx.http.get(out_url(job, "hls/" + v["uri"])).body.decode()
        folder = v["uri"].rsplit("/", 1)[0]
        durs = [float(x) for x in re.findall(r"#EXTINF:([\d.]+),", media)]
        segs = [ln for ln in media.splitlines() if ln and not ln.startswith("#")]
        eq(len(segs), 2, f"{v['uri']} segments")
        assert abs(durs[0] - 6.0) < 0.05, f"first segment {durs[0]} s, want 6"
        sizes = [len(ctx.http.get(out_url(job, f"hls/{folder}/{s}")).body) for s in segs]
        assert sum(sizes) * 8 / sum(durs) < avg, f"{v['uri']}: {sizes} over {durs} vs {avg}"


@suite.test
def test_keyframes_are_at_the_same_times_in_every_rendition(ctx):
    job = ladder_job(ctx)
    _, variants = master_of(ctx, job)
    kf = {v["uri"]: keyframes(ctx.base + out_url(job, "hls/" + v["uri"])) for v in variants}
    first = kf[variants[0]["uri"]]
    for uri, times in kf.items():
        eq(times, first, f"keyframes of {uri} vs {variants[0]['uri']}")
    gaps = {round(b - a, 3) for a, b in zip(first, first[1:])}
    eq(gaps, {2.0}, "keyframe spacing (a 2 s GOP at 24 fps)")
    eq(len(first), 4, "keyframes in 7 s")


@suite.test
def test_an_hls_client_decodes_the_master_and_each_variant_over_http(ctx):
    job = ladder_job(ctx)
    _, variants = master_of(ctx, job)
    urls = [ctx.base + out_url(job, "hls/master.m3u8")]
    urls += [ctx.base + out_url(job, "hls/" + v["uri"]) for v in variants]
    urls.append(ctx.base + out_url(job, "hls/audio/index.m3u8"))
    for url in urls:
        p = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", url, "-map", "0",
                            "-f", "null", "-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=120)
        eq((p.returncode, p.stderr.decode().strip()), (0, ""), f"ffmpeg -i {url}")


@suite.test
def test_set_files_have_their_types_and_cache_headers(ctx):
    job = ladder_job(ctx)
    want = {"hls/master.m3u8": ("application/vnd.apple.mpegurl", "public, max-age=5"),
            "hls/720p/index.m3u8": ("application/vnd.apple.mpegurl", "public, max-age=5"),
            "hls/720p/init.mp4": ("video/mp4", "public, max-age=31536000, immutable"),
            "hls/720p/seg_00001.m4s": ("video/mp4", "public, max-age=31536000, immutable"),
            "hls/audio/seg_00001.m4s": ("video/mp4", "public, max-age=31536000, immutable")}
    for name, (ctype, cache) in want.items():
        r = ctx.http.get(out_url(job, name))
        eq((r.status, r.headers.get("content-type"), r.headers.get("cache-control")),
           (200, ctype, cache), name)
        assert r.headers["content-disposition"].startswith("inline"), r.headers
    r = ctx.http.get(out_url(job, "hls/720p/seg_00002.m4s"), headers={"Range": "bytes=0-99"})
    eq((r.status, len(r.body)), (206, 100), "range on a segment")
    r = ctx.http.get(out_url(job, "poster.jpg"))
    eq((r.status, r.headers.get("content-type"), r.headers.get("cache-control")),
       (200, "image/jpeg", None), "poster: a single file as before")


@suite.test
def test_names_outside_the_set_are_not_found(ctx):
    job = ladder_job(ctx)
    base = f"/v1/jobs/{job['id']}/outputs/"
    for path in ["hls/../input", "hls/%2e%2e/input", "hls/%2E%2E/%2e%2e/input", "hls//master.m3u8",
                 "hls/./master.m3u8", "hls/", "hls", "/hls/master.m3u8", "input",
                 "hls%2F..%2Finput", "hls\\master.m3u8", "hls/720p/nope.m4s",
                 "hls/" + "a/" * 8 + "x", "hls/" + "a" * 65, "h" * 193, "hlsx/master.m3u8"]:
        r = ctx.http.get(base + path)
        eq(r.status, 404, f"GET {path}")
        eq(sorted(r.json()["error"]), ["code", "message"], f"error body for {path}")
    r = ctx.http.get(base + "hls/master.m3u8%00.jpg")
    assert r.status in (400, 404), r
    # limit: a name of 192 bytes is a name (not found), 193 is not one (not found either)
    for n in (191, 192, 193):
        name = "/".join(["p" * 63] * 3)[:n]
        eq(ctx.http.get(base + name).status, 404, f"name of {n}")


@suite.test
def test_a_small_input_is_never_upscaled(ctx):
    job = ladder_job(ctx, "small")
    _, variants = master_of(ctx, job)
    eq([(v["RESOLUTION"], v["uri"]) for v in variants], [("320x240", "240p/index.m3u8")],
       "one rendition at the input's size")
    s = ffprobe_url(ctx.base + out_url(job, "hls/240p/index.m3u8"), "-show_streams")["streams"][0]
    eq((s["width"], s["height"]), (320, 240), "size")
    eq(variants[0]["FRAME-RATE"], "25.000", "frame rate")


@suite.test
def test_hls_720p_preset_caps_the_ladder(ctx):
    job_id = submit(ctx, "small", preset="hls-720p", thumbnail=False, sprite=False)
    job = wait_job(ctx, job_id)
    eq(job["state"], "succeeded", f"state ({job['error']})")
    eq(job["params"], {"preset": "hls-720p", "thumbnail": False, "sprite": False}, "params")
    eq([o["name"] for o in job["outputs"]], ["hls/master.m3u8"],
       "outputs without poster or sprite")
    eq(job["outputs"][0]["sprite"], None, "no sprite in the measures")
    eq([n for n in ctx.blobs.names(job_id) if "sprite" in n], [], "no sprite blobs")
    r = ctx.http.post("/v1/videos?preset=hls-4k", body=b"x" * 100,
                      headers={"Content-Type": "video/mp4"})
    eq(r.status, 422, f"unknown preset {r}")
    assert "hls-720p" in r.json()["error"]["message"], r.json()


@suite.test
def test_cancel_mid_ladder_leaves_no_output_set(ctx):
    job_id = submit(ctx, "long", thumbnail=False)
    wait_until(lambda: 0 < ctx.http.get(f"/v1/jobs/{job_id}").json()["progress"] < 100,
               60 * SLOW, 0.05, "progress while the ladder runs")
    t0 = time.monotonic()
    r = ctx.http.delete(f"/v1/jobs/{job_id}")
    assert r.status in (200, 202), r
    job = wait_job(ctx, job_id, timeout=10)
    eq(job["state"], "cancelled", "state")
    assert time.monotonic() - t0 < 3 * SLOW, "cancel took too long"
    eq(job["outputs"], [], "outputs")
    time.sleep(0.3)
    eq([n for n in ctx.blobs.names(job_id) if n.startswith("hls/")], [], "hls blobs after cancel")
    eq(ctx.blobs.pending(job_id), [], "unfinished writes after cancel")
    left = []
    for dirpath, dirs, _ in os.walk(ctx.scratch):
        left += [d for d in dirs if d.startswith(job_id)]
    eq(left, [], "work directories left")
    eq(ctx.http.get(out_url(job, "hls/master.m3u8")).status, 404, "master after cancel")


def vtt_cues(text):
    """[(from, to, name, (x, y, w, h))] of a sprite's WebVTT file."""
    lines = text.splitlines()
    assert lines and lines[0] == "WEBVTT", text[:200]
    cues = []

    def secs(t):
        h, m, rest = t.split(":")
        return int(h) * 3600 + int(m) * 60 + float(rest)
    for i, line in enumerate(lines):
        m = re.fullmatch(r"(\d\d:\d\d:\d\d\.\d{3}) --> (\d\d:\d\d:\d\d\.\d{3})", line)
        if m:
            ref = re.fullmatch(r"([^#]+)#xywh=(\d+),(\d+),(\d+),(\d+)", lines[i + 1])
            assert ref, f"cue {line} points at {lines[i + 1]!r}"
            cues.append((secs(m.group(1)), secs(m.group(2)), ref.group(1),
                         tuple(int(ref.group(k)) for k in range(2, 6))))
    return cues


def check_cues(cues, duration, img_w, img_h, interval):
    """Cues from 0 to the video's end, back to back, each interval long but the last,
    each tile inside the image."""
    assert cues, "no cues"
    eq(cues[0][0], 0.0, "first cue starts at 0")
    for (a0, a1, _, _), (b0, _, _, _) in zip(cues, cues[1:]):
        eq(round(b0, 3), round(a1, 3), "cues back to back")
        eq(round(a1 - a0, 3), float(interval), "cue length")
    assert abs(cues[-1][1] - duration) < 0.05, f"last cue ends {cues[-1][1]}, video {duration}"
    assert cues[-1][1] > cues[-1][0], cues[-1]
    for _, _, name, (x, y, w, h) in cues:
        eq(name, "sprite.jpg", "tile image")
        assert w > 0 and h > 0 and x + w <= img_w and y + h <= img_h, \
            f"tile {x},{y},{w},{h} outside {img_w}x{img_h}"


def rgb_of(url):
    """(width, height, rgb24 bytes) of an image over HTTP (ffprobe and ffmpeg)."""
    s = ffprobe_url(url, "-show_streams")["streams"][0]
    p = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", url, "-f", "rawvideo",
                        "-pix_fmt", "rgb24", "-"], stdout=subprocess.PIPE, check=True, timeout=60)
    eq(len(p.stdout), s["width"] * s["height"] * 3, "decoded bytes")
    return s["width"], s["height"], p.stdout


@suite.test
def test_sprite_sheet_vtt_covers_the_video_with_tiles_inside_the_grid(ctx):
    job = ladder_job(ctx)
    outs = {o["name"]: o for o in job["outputs"]}
    vtt, jpg = outs["hls/sprite.vtt"], outs["hls/sprite.jpg"]
    eq((vtt["content_type"], jpg["content_type"]), ("text/vtt", "image/jpeg"), "listed types")
    # 7 s: a tile every 2 s (0, 2, 4, 6), 160x90 tiles of the 16:9 picture in one row
    eq((vtt["interval"], vtt["tiles"], vtt["image"]), (2, 4, "hls/sprite.jpg"), "vtt entry")
    eq((jpg["width"], jpg["height"], jpg["columns"], jpg["rows"], jpg["tile_width"],
        jpg["tile_height"]), (640, 90, 4, 1, 160, 90), "jpg entry")
    master = outs["hls/master.m3u8"]
    eq(master["sprite"], {"image": "hls/sprite.jpg", "vtt": "hls/sprite.vtt", "interval": 2,
                          "tiles": 4, "columns": 4, "rows": 1, "tile_width": 160,
                          "tile_height": 90, "width": 640, "height": 90}, "measures")
    r = ctx.http.get(out_url(job, "hls/sprite.vtt"))
    eq((r.status, r.headers.get("content-type"), len(r.body)), (200, "text/vtt", vtt["bytes"]),
       "sprite.vtt")
    assert r.headers["content-disposition"].startswith("inline"), r.headers
    cues = vtt_cues(r.body.decode())
    eq(len(cues), 4, "cues")
    w, h, _ = rgb_of(ctx.base + out_url(job, "hls/sprite.jpg"))
    eq((w, h), (640, 90), "the JPEG's size is the grid's")
    check_cues(cues, 7.0, w, h, 2)
    r = ctx.http.get(out_url(job, "hls/sprite.jpg"))
    eq((r.status, r.headers.get("content-type"), len(r.body), r.body[:2]),
       (200, "image/jpeg", jpg["bytes"], b"\xff\xd8"), "sprite.jpg")


@suite.test
def test_sprite_tiles_show_the_picture_at_their_time(ctx):
    job_id = submit(ctx, "colours", preset="hls-720p", thumbnail=False)
    job = wait_job(ctx, job_id)
    eq(job["state"], "succeeded", f"state ({job['error']})")
    eq(job["params"], {"preset": "hls-720p", "thumbnail": False, "sprite": True}, "params")
    cues = vtt_cues(ctx.http.get(out_url(job, "hls/sprite.vtt")).body.decode())
    w, h, rgb = rgb_of(ctx.base + out_url(job, "hls/sprite.jpg"))
    eq((w, h), (960, 90), "six 160x90 tiles in a row")
    check_cues(cues, 11.0, w, h, 2)
    for k, (start, _, _, (x, y, tw, th)) in enumerate(cues):
        step = int(start // 2)
        want = (50 * step, 40, 220 - 40 * step)
        px = [rgb[((y + yy) * w + x + xx) * 3:((y + yy) * w + x + xx) * 3 + 3]
              for yy in range(8, th - 8, 4) for xx in range(8, tw - 8, 4)]
        mean = tuple(sum(p[c] for p in px) / len(px) for c in range(3))
        assert all(abs(mean[c] - want[c]) < 20 for c in range(3)), \
            f"tile {k} at {start} s: mean colour {mean}, the video shows {want} then"


def multipart_body(fields, data):
    b = "spoolsprite"
    parts = [f'--{b}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields]
    parts.append(f'--{b}\r\nContent-Disposition: form-data; name="file"; filename="a.mp4"\r\n'
                 f"Content-Type: video/mp4\r\n\r\n".encode() + data + b"\r\n")
    return b"".join(parts) + f"--{b}--\r\n".encode(), f"multipart/form-data; boundary={b}"


@suite.test
def test_sprite_parameter_is_validated_naming_the_field(ctx):
    with open(ctx.clips["small"], "rb") as f:
        data = f.read()
    video = {"Content-Type": "video/mp4"}
    for query in ["preset=hls&sprite=maybe", "preset=hls&sprite=", "sprite=true",
                  "preset=mp4-480p&sprite=1", "preset=hls&sprite=true&sprite=false"]:
        r = ctx.http.post(f"/v1/videos?{query}", body=data, headers=video)
        eq((r.status, r.json()["error"]["field"]), (422, "sprite"), query)
    url = "https://example.com/a.mp4"
    for body in [{"source_url": url, "preset": "hls", "sprite": "yes"},
                 {"source_url": url, "preset": "hls", "sprite": 1},
                 {"source_url": url, "preset": "hls", "sprite": None},
                 {"source_url": url, "sprite": True},
                 {"source_url": url, "preset": "webm-720p", "sprite": True}]:
        r = ctx.http.post("/v1/videos", body=json.dumps(body).encode(),
                          headers={"Content-Type": "application/json"})
        eq((r.status, r.json()["error"]["field"]), (422, "sprite"), body)
    body, ctype = multipart_body([("preset", "mp4-480p"), ("sprite", "on")], data)
    r = ctx.http.post("/v1/videos", body=body, headers={"Content-Type": ctype})
    eq((r.status, r.json()["error"]["field"]), (422, "sprite"), "multipart")
    # accepted: false with any preset; the field is recorded for HLS presets only
    r = ctx.http.post("/v1/videos", body=json.dumps({"source_url": url, "preset": "mp4-480p",
                                                     "sprite": False, "delay": 3600}).encode(),
                      headers={"Content-Type": "application/json"})
    eq(r.status, 202, r)
    eq(r.json()["params"], {"preset": "mp4-480p", "thumbnail": True}, "params of an mp4 job")
    r = ctx.http.post("/v1/videos", body=json.dumps({"source_url": url, "preset": "hls",
                                                     "delay": 3600}).encode(),
                      headers={"Content-Type": "application/json"})
    eq(r.json()["params"], {"preset": "hls", "thumbnail": True, "sprite": True}, "default")


@suite.test
def test_cancel_during_publish_never_shows_a_partial_set(ctx):
    """The worker is frozen (SIGSTOP) in slices once the ladder is encoded, until the
    store holds part of the set but not its master; the cancel lands there."""
    job_id = submit(ctx, "hd", thumbnail=False, sprite=True)
    worker, job_url = ctx.worker, f"/v1/jobs/{job_id}"
    set_names = lambda: [n for n in ctx.blobs.names(job_id) if n.startswith("hls/")]  # noqa
    mark = re.compile(r"encoded \d+ renditions")
    caught = None
    deadline = time.monotonic() + 90 * SLOW
    # a slice as short as a signal's round trip on a local disk; S3 puts need longer
    slice_s = 0.01 if ctx.blobs.kind == "s3" else 0
    try:
        while time.monotonic() < deadline:
            worker.signal(signal.SIGSTOP)
            if mark.search(worker.output()[-20000:]):
                names = set_names()
                if "hls/master.m3u8" in names:
                    raise AssertionError("the set was published within one slice")
                if names:
                    caught = names
                    break
                worker.signal(signal.SIGCONT)
                time.sleep(slice_s)
            else:
                worker.signal(signal.SIGCONT)
                time.sleep(0.02)
        assert caught, "never caught the worker publishing"
        # mid-publish: nothing of the set is served, the job lists no output
        job = ctx.http.get(job_url).json()
        eq((job["state"], job["outputs"]), ("running", []), "while publishing")
        for name in ["hls/master.m3u8", caught[0]]:
            eq(ctx.http.get(out_url(job, name)).status, 404, f"{name} while publishing")
        r = ctx.http.delete(job_url)
        assert r.status in (200, 202), r  # a running job: its worker stops it
        # The worker sees the cancel at its next lease renewal (every 200 ms here), due
        # by the time it resumes; still in slices, it meets the cancel mid-publish. At
        # every stop nothing of the set is served.
        time.sleep(0.3)
        while time.monotonic() < deadline:
            worker.signal(signal.SIGCONT)
            time.sleep(slice_s)
            worker.signal(signal.SIGSTOP)
            job = ctx.http.get(job_url).json()
            if job["state"] != "running":
                break
            eq(job["outputs"], [], "outputs while the cancel lands")
            eq(ctx.http.get(out_url(job, "hls/master.m3u8")).status, 404, "master meanwhile")
    finally:
        worker.signal(signal.SIGCONT)
    job = wait_job(ctx, job_id, timeout=15)
    eq(job["state"], "cancelled", "the cancel landed during the publish")
    try:
        wait_until(lambda: set_names() == [] and ctx.blobs.pending(job_id) == [], 10 * SLOW,
                   0.05, "the partial set removed")
    except AssertionError:
        log = "\n".join(ln for ln in worker.output().splitlines() if job_id in ln)
        raise AssertionError(f"left after the cancel: {set_names()} "
                             f"{ctx.blobs.pending(job_id)}; worker:\n{log}")
    job = ctx.http.get(job_url).json()
    eq((job["state"], job["outputs"]), ("cancelled", []), "after the worker resumed")
    for name in ["hls/master.m3u8", "hls/sprite.vtt", caught[0]]:
        eq(ctx.http.get(out_url(job, name)).status, 404, f"{name} after cancel")


@suite.test
def test_redirect_mode_answers_playlists_and_cues_itself_and_redirects_media(ctx):
    if ctx.blobs.kind != "s3":
        raise Skip("SPOOL_DOWNLOADS=redirect needs an object store (run with SPOOL_TEST_BLOBS=s3)")
    api, port = api_proc(ctx, SPOOL_DOWNLOADS="redirect")
    ctx.extra_procs.append(api)
    http, base = Http("127.0.0.1", port), f"http://127.0.0.1:{port}"
    job = ladder_job(ctx)
    for name, ctype in [("hls/master.m3u8", "application/vnd.apple.mpegurl"),
                        ("hls/720p/index.m3u8", "application/vnd.apple.mpegurl"),
                        ("hls/sprite.vtt", "text/vtt")]:
        r = http.get(out_url(job, name))
        direct = ctx.http.get(out_url(job, name))
        eq((r.status, r.headers.get("content-type"), r.body), (200, ctype, direct.body),
           f"{name}: answered by spool-api, relative names intact")
    for name, ctype in [("hls/720p/init.mp4", "video/mp4"), ("hls/720p/seg_00001.m4s", "video/mp4"),
                        ("hls/audio/seg_00002.m4s", "video/mp4"), ("hls/sprite.jpg", "image/jpeg")]:
        r = http.get(out_url(job, name))
        eq((r.status, r.headers.get("cache-control")), (307, "no-store"), f"{name} redirect")
        loc = r.headers["location"]
        assert loc.startswith(ctx.blobs.s3.endpoint) or "X-Amz-Signature" in loc, loc
        got = subprocess.run(["curl", "-sS", "-D", "-", "-o", "-", loc], stdout=subprocess.PIPE,
                             check=True, timeout=30).stdout
        head, _, body = got.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        assert f"content-type: {ctype}".encode() in head.lower(), head
        eq(body, ctx.http.get(out_url(job, name)).body, f"{name}: the store's bytes")
    # a player follows the redirects from the master down
    p = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i",
                        base + out_url(job, "hls/master.m3u8"), "-map", "0", "-f", "null", "-"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    eq((p.returncode, p.stderr.decode().strip()), (0, ""), "ffmpeg through the redirecting API")
    r = http.get(out_url(job, "hls/../input"))
    eq(r.status, 404, "names outside the set, redirect mode")


@suite.test
def test_blob_store_holds_what_the_jobs_report(ctx):
    check_blob_stores(suite)


sys.exit(suite.run(setup, teardown))
