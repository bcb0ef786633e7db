"""The HLS ladder end to end: clips made by the ffmpeg command here, uploaded to a real
spool-api, run by a real spool-video, the set read back over HTTP from the API the way a
player does (ffprobe and `ffmpeg -i http://.../master.m3u8`), in the blob store that
SPOOL_TEST_BLOBS names (a directory, or S3 through harness.S3).
"""
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BIN, SANITIZED, Http, Proc, Redis, Suite, blob_store,  # noqa: E402
                     check_blob_stores, eq, make_clip, wait_until)

SLOW = 3 if SANITIZED else 1
suite = Suite("hls")


class Ctx:
    pass


def start_api(ctx):
    env = {"SPOOL_REDIS_URL": ctx.redis.url, **ctx.blobs.env(), "SPOOL_LISTEN": "127.0.0.1:0",
           "SPOOL_LOG_LEVEL": "info", "SPOOL_API_THREADS": "2"}
    ctx.api = Proc([os.path.join(BIN, "spool-api")], env=env, name="spool-api", logdir=suite.tmp)

    def started():
        m = re.search(r"\(port (\d+),", ctx.api.output())
        if m is None and not ctx.api.alive():
            raise AssertionError("spool-api exited:\n" + ctx.api.output())
        return m
    ctx.port = int(wait_until(started, 20, what="spool-api to listen").group(1))
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
    ctx.clips = c
    ctx.jobs = {}
    return ctx


def teardown(ctx):
    for p in (ctx.worker, ctx.api):
        code = p.stop()
        if code != 0:
            print(p.output()[-3000:])
    ctx.redis.destroy()


def submit(ctx, clip, preset="hls", thumbnail=True):
    with open(ctx.clips[clip], "rb") as f:
        body = f.read()
    r = ctx.http.post(f"/v1/videos?preset={preset}&thumbnail={'true' if thumbnail else 'false'}",
                      body=body, headers={"Content-Type": "video/mp4"})
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
    eq(sorted(o["name"] for o in job["outputs"]), ["hls/master.m3u8", "poster.jpg"], "outputs")
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
    job_id = submit(ctx, "small", preset="hls-720p", thumbnail=False)
    job = wait_job(ctx, job_id)
    eq(job["state"], "succeeded", f"state ({job['error']})")
    eq([o["name"] for o in job["outputs"]], ["hls/master.m3u8"], "outputs without poster")
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


@suite.test
def test_blob_store_holds_what_the_jobs_report(ctx):
    check_blob_stores(suite)


sys.exit(suite.run(setup, teardown))
