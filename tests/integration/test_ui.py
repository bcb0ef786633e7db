#!/usr/bin/env python3
"""The dashboard at /ui in headless Chromium (Debian's chromium, chromium-driver and
python3-selenium), against a real spool-api, redis-server and spool-pdf worker (and
api-test-worker where a job must fail or carry a video): the overview shows a job
submitted through the API appear and finish live; cancel, retry and the dead-letter
actions work from the pages; a paused queue holds a job until resumed; with tokens on,
the page shows no data until a token is given, and outputs come through blob: URLs; a
malicious title renders as text; no page logs an error to the browser console. Each
page's screenshot goes to $SPOOL_TEST_OUTPUT_DIR/test_ui (build/test-output/test_ui).

Until spool-api has the event stream (GET /v1/events) and pausing (POST
/v1/queues/{name}/pause), the assertions that need them skip with a message, and only
when those routes answer 404.
"""
import http.client
import json
import os
import sys
import time

try:
    import selenium  # noqa: F401
except ImportError:
    # python3-selenium is Debian's: run under Debian's python3 when this one lacks it.
    deb = "/usr/bin/python3"
    if os.path.exists(deb) and os.path.realpath(sys.executable) != os.path.realpath(deb) \
            and not os.environ.get("SPOOL_UI_REEXEC"):
        os.environ["SPOOL_UI_REEXEC"] = "1"
        os.execv(deb, [deb] + sys.argv)
    print("1..1\nnot ok 1 - python3-selenium is not installed (make deps)")
    sys.exit(1)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, ROOT, Http, Proc, Redis, Skip, Suite, eq, wait_until  # noqa: E402
from test_api import ApiServer, Worker  # noqa: E402

suite = Suite("ui")
OUT = os.path.join(os.environ.get("SPOOL_TEST_OUTPUT_DIR", os.path.join(ROOT, "build/test-output")),
                   "test_ui")
TOKEN = "ui-test-token"
EVIL = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>&amp;'
WAIT = 15


class Ctx:
    pass


def route_status(port, method, path):
    """The status a route answers, reading no body (an event stream would not end)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request(method, path, headers={"Accept": "text/event-stream"})
        return c.getresponse().status
    finally:
        c.close()


def browser(tmp):
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1400,1100", "--no-first-run", "--disable-extensions",
              f"--user-data-dir={tmp}/chromium"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def setup():
    os.makedirs(OUT, exist_ok=True)
    c = Ctx()
    c.redis = Redis()
    c.redis.start()
    c.api = ApiServer(suite, c.redis, env={"SPOOL_HISTORY_INTERVAL": "1s"})
    c.tok = ApiServer(suite, c.redis, env={"SPOOL_API_TOKENS": TOKEN}, name="spool-api-tokens",
                      blobs=c.api.blobs)
    c.pdf = Proc([os.path.join(BIN, "spool-pdf")], env={
        "SPOOL_REDIS_URL": c.redis.url, **c.api.blobs.env(), "SPOOL_LOG_LEVEL": "info"},
        name="spool-pdf", logdir=suite.tmp)
    c.sse = route_status(c.api.port, "GET", "/v1/events") != 404
    c.d = browser(suite.tmp)
    c.d.set_page_load_timeout(30)
    return c


def teardown(c):
    try:
        c.d.quit()
    finally:
        c.pdf.stop()
        c.tok.stop()
        c.api.stop()
        c.redis.destroy()


# ---- helpers ----------------------------------------------------------------------------

def url(c, path, api=None):
    return f"http://127.0.0.1:{(api or c.api).port}{path}"


def until(c, fn, what, timeout=WAIT):
    return WebDriverWait(c.d, timeout, 0.05).until(lambda d: fn(d), message=what)


def css(c, sel):
    return c.d.find_elements(By.CSS_SELECTOR, sel)


def text(c, sel):
    """The text of the first element sel matches (None: none), read in one step: the
    pages redraw parts of themselves as events arrive."""
    return c.d.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.innerText.trim() : null;", sel)


def texts(c, sel):
    """The texts of every element sel matches, read in one step."""
    return c.d.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map((e) => e.innerText.trim());", sel)


def shot(c, name):
    c.d.save_screenshot(os.path.join(OUT, name + ".png"))


def console_errors(c, allow=()):
    """Errors the pages logged since the last call (each entry read once), but those
    with one of the allow strings in their message."""
    bad = []
    for e in c.d.get_log("browser"):
        if e["level"] in ("SEVERE", "ERROR") and not any(a in e["message"] for a in allow):
            bad.append(e["message"])
    return bad


def no_console_errors(c, allow=()):
    if not c.sse:  # the page asks for the stream, and is told 404: that is logged
        allow = tuple(allow) + ("/v1/events", "/events - Failed to load resource")
    errs = console_errors(c, allow)
    assert not errs, "browser console errors:\n" + "\n".join(errs)


def live_status(c):
    return c.d.find_element(By.ID, "live").get_attribute("data-status")


def wait_live(c):
    """Wait until the page's stream is up (or known to be missing)."""
    until(c, lambda d: live_status(c) in ("on", "unavailable"), "the live stream to settle")
    if c.sse:
        eq(live_status(c), "on", "live status")
    else:
        eq(text(c, "#live"), "live updates unavailable", "what the page says without SSE")


def export(c, title="Report", rows=3, api=None):
    body = {"title": title, "columns": [{"key": "n", "label": "N"}],
            "rows": [{"n": i} for i in range(rows)]}
    r = (api or c.api).http.post("/v1/exports", body)
    assert r.status == 202, r.body
    return r.json()["id"]


def video_job(c, api=None):
    r = (api or c.api).http.post("/v1/videos", {"source_url": "http://example.com/v.mp4"})
    assert r.status == 202, r.body
    return r.json()["id"]


def job(c, job_id):
    return c.api.http.get(f"/v1/jobs/{job_id}").json()


def open_page(c, path, api=None, ready="main h1"):
    c.d.get(url(c, path, api))
    until(c, lambda d: css(c, ready), f"{path} to draw ({ready})")


# ---- tests --------------------------------------------------------------------------------

@suite.test
def test_overview_shows_queues_chart_and_a_job_finish_live(c):
    first = export(c, "Warm-up")
    wait_until(lambda: job(c, first)["state"] == "succeeded", 30, what="spool-pdf to run a job")
    open_page(c, "/ui", ready="#recent")
    until(c, lambda d: css(c, 'section.card[data-queue="pdf"]'), "the pdf queue's card")
    assert css(c, 'section.card[data-queue="pdf"] canvas'), "a chart canvas"
    assert c.d.execute_script("return typeof window.Chart") == "function", "Chart.js loaded"
    assert css(c, f'#recent tr[data-job="{first}"]'), "the finished job is listed"
    wait_live(c)
    c.d.execute_script("window.__sameDocument = 1")
    if not c.sse:
        shot(c, "overview")
        no_console_errors(c)
        raise Skip("GET /v1/events answers 404: the overview cannot show the job live yet "
                   "(everything else on this page passed)")
    job_id = export(c, "Live one", rows=200)
    until(c, lambda d: css(c, f'#recent tr[data-job="{job_id}"]'),
          "the new job to appear live (no event came: do the queue scripts write the event "
          "stream, as EVENTS.md says?)")
    until(c, lambda d: "succeeded" in (text(c, f'#recent tr[data-job="{job_id}"] .job-state') or ""),
          "the job to finish live", 30)
    eq(c.d.execute_script("return window.__sameDocument"), 1, "no reload")
    shot(c, "overview")
    no_console_errors(c)


@suite.test
def test_event_stream_parser_in_the_browser(c):
    """The page's text/event-stream parser (live.js), fed in awkward chunks."""
    open_page(c, "/ui", ready="#recent")
    got = c.d.execute_async_script("""
        const done = arguments[arguments.length - 1];
        import('/ui/assets/live.js').then(({ SseParser }) => {
          const out = [];
          const p = new SseParser((e) => out.push(e));
          const text = ': heartbeat\\r\\nid: 1-0/0\\r\\nevent: job\\r\\ndata: {"a":\\r\\ndata: 1}\\r\\n\\r' +
            '\\n:x\\n\\nretry: 5\\ndata:plain\\nid: 2-0/1\\n\\nevent: gap\\ndata\\n\\n' +
            'id\\ndata: last\\r\\rdata: cut';
          for (let i = 0; i < text.length; i += 3) p.push(text.slice(i, i + 3));
          done(out);
        }).catch((e) => done(String(e)));
    """)
    eq(got, [{"type": "job", "id": "1-0/0", "data": '{"a":\n1}'},
             {"type": "message", "id": "2-0/1", "data": "plain"},
             {"type": "gap", "id": None, "data": ""},
             {"type": "message", "id": "", "data": "last"}], "events parsed")
    no_console_errors(c)


@suite.test
def test_queue_page_and_workers_page(c):
    open_page(c, "/ui/queues/pdf", ready="#recent")
    eq(len(css(c, "section.card")), 1, "one queue's card")
    shot(c, "queue")
    open_page(c, "/ui/workers", ready="#workers")
    until(c, lambda d: any("pdf" in t for t in texts(c, "#workers tbody tr[data-worker]")),
          "spool-pdf listed")
    shot(c, "workers")
    no_console_errors(c)


@suite.test
def test_cancel_from_the_job_page(c):
    job_id = video_job(c)  # no video worker runs: it waits
    open_page(c, f"/ui/jobs/{job_id}", ready="#job-actions")
    eq(text(c, '[data-field="state"]'), "queued", "state shown")
    css(c, '#job-actions [data-action="cancel"]')[0].click()
    until(c, lambda d: text(c, '[data-field="state"]') == "cancelled", "the page to show cancelled")
    eq(job(c, job_id)["state"], "cancelled", "the job")
    assert not css(c, '#job-actions [data-action="cancel"]'), "no cancel on an ended job"
    shot(c, "job")
    no_console_errors(c)


@suite.test
def test_job_page_opens_the_pdf(c):
    job_id = export(c, "Quarterly", rows=40)
    wait_until(lambda: job(c, job_id)["state"] == "succeeded", 30, what="the export")
    open_page(c, f"/ui/jobs/{job_id}", ready='[data-output="export.pdf"] [data-kind="pdf"]')
    eq(text(c, '[data-field="state"]'), "succeeded", "state")
    eq(text(c, '[data-field="progress"]'), "100%", "progress")
    shot(c, "job-pdf")
    before = set(c.d.window_handles)
    main_window = c.d.current_window_handle
    css(c, '[data-output="export.pdf"] [data-kind="pdf"]')[0].click()
    until(c, lambda d: len(set(d.window_handles) - before) == 1, "the PDF in a new tab")
    tab = (set(c.d.window_handles) - before).pop()
    c.d.switch_to.window(tab)
    until(c, lambda d: d.current_url.startswith(f"blob:http://127.0.0.1:{c.api.port}/"),
          "the tab on the PDF (a blob: URL: the output's address would download it)")
    eq(d_type(c), "application/pdf", "what the tab shows")
    c.d.close()
    c.d.switch_to.window(main_window)
    no_console_errors(c)


@suite.test
def test_job_page_follows_its_job_live(c):
    if not c.sse:
        raise Skip("GET /v1/events answers 404: no event stream to follow yet")
    w = Worker(c.api, queues="video")
    try:
        job_id = video_job(c)
        open_page(c, f"/ui/jobs/{job_id}", ready="#job-fields")
        wait_live(c)
        c.d.execute_script("window.__sameDocument = 1")
        w.take(job_id)
        until(c, lambda d: text(c, '[data-field="state"]') == "running", "running, live")
        eq(w.cmd("progress 40"), "ok")
        until(c, lambda d: text(c, '[data-field="progress"]') == "40%", "40%, live")
        eq(w.cmd("succeed"), "ok succeeded")
        until(c, lambda d: text(c, '[data-field="state"]') == "succeeded", "succeeded, live")
    finally:
        w.close()
    assert len(texts(c, "#job-events li")) >= 3, texts(c, "#job-events li")
    eq(c.d.execute_script("return window.__sameDocument"), 1, "no reload")
    no_console_errors(c)


def d_type(c):
    return c.d.execute_script("return document.contentType")


def failed_video_jobs(c, n):
    w = Worker(c.api, queues="video")
    try:
        ids = [video_job(c) for _ in range(n)]
        for _ in range(n):
            w.take()
            eq(w.cmd("fail broken_input the input is broken"), "ok failed")
        return ids
    finally:
        w.close()


@suite.test
def test_retry_from_the_jobs_page(c):
    job_id = failed_video_jobs(c, 1)[0]
    # the job's page lists the attempt that failed, with its error
    open_page(c, f"/ui/jobs/{job_id}", ready="#attempts")
    until(c, lambda d: css(c, '#attempts tr[data-attempt="1"]'), "the failed attempt listed")
    row = text(c, '#attempts tr[data-attempt="1"]')
    assert "failed" in row and "broken_input: the input is broken" in row, row
    open_page(c, "/ui/jobs?state=failed&queue=video", ready="#jobs")
    row = f'#jobs tr[data-job="{job_id}"]'
    until(c, lambda d: css(c, row), "the failed job listed")
    assert all("failed" in t for t in texts(c, "#jobs tbody tr[data-job] .job-state")), "filter"
    shot(c, "jobs")
    css(c, row + ' [data-action="retry"]')[0].click()
    until(c, lambda d: "queued" in text(c, row + " .job-state"), "the row to show queued")
    eq(job(c, job_id)["state"], "queued", "the job")
    # find by id goes to the job's own address
    open_page(c, "/ui/jobs", ready="#find")
    box = css(c, '#find input[name="id"]')[0]
    box.send_keys(job_id)
    css(c, '#find button')[0].click()
    until(c, lambda d: d.current_url.endswith(f"/ui/jobs/{job_id}"), "the job's address")
    until(c, lambda d: job_id in (text(c, '[data-field="id"]') or ""), "the job's page")
    no_console_errors(c)


@suite.test
def test_dead_letters_retry_selected_and_purge_all(c):
    c.redis.cli("DEL", "spool:q:video:dead")
    ids = failed_video_jobs(c, 3)
    open_page(c, "/ui/dead", ready="main table")
    shot(c, "dead")
    open_page(c, "/ui/dead/video", ready="#dead")
    until(c, lambda d: len(css(c, "#dead tbody tr[data-job]")) == 3, "three dead jobs")
    css(c, f'#dead tr[data-job="{ids[0]}"] input[type=checkbox]')[0].click()
    shot(c, "dead-queue")
    css(c, '[data-action="retry-selected"]')[0].click()
    until(c, lambda d: len(css(c, "#dead tbody tr[data-job]")) == 2, "two left")
    eq(job(c, ids[0])["state"], "queued", "retried from the page")
    purge = [b for b in css(c, "main .actions button") if b.text == "Purge all"][0]
    purge.click()  # asks again first
    time.sleep(0.2)
    eq(c.api.http.get("/v1/queues/video/dead").json()["total"], 2, "nothing purged on one click")
    purge.click()
    until(c, lambda d: not css(c, "#dead tbody tr[data-job]"), "the set emptied")
    eq(c.api.http.get("/v1/queues/video/dead").json()["total"], 0, "dead set")
    eq(c.api.http.get(f"/v1/jobs/{ids[1]}").status, 404, "purged job")
    no_console_errors(c)


@suite.test
def test_paused_queue_holds_a_job_until_resumed(c):
    status = route_status(c.api.port, "POST", "/v1/queues/pdf/resume")
    if status == 404:
        raise Skip("POST /v1/queues/{name}/resume answers 404: pausing is not in this spool-api")
    open_page(c, "/ui/queues/pdf", ready='section.card[data-queue="pdf"]')
    btn = 'section.card[data-queue="pdf"] [data-action="pause"]'
    until(c, lambda d: css(c, btn), "a pause button")
    css(c, btn)[0].click()
    until(c, lambda d: css(c, 'section.card[data-queue="pdf"] [data-paused]'), "shown paused")
    job_id = export(c, "Held")
    time.sleep(2)
    eq(job(c, job_id)["state"], "queued", "held while paused")
    css(c, 'section.card[data-queue="pdf"] [data-action="resume"]')[0].click()
    wait_until(lambda: job(c, job_id)["state"] == "succeeded", 30, what="the job after resume")
    no_console_errors(c)


@suite.test
def test_malicious_title_renders_as_text(c):
    job_id = export(c, EVIL)
    open_page(c, f"/ui/jobs/{job_id}", ready="#job-fields")
    assert EVIL in text(c, "main h1"), "the title as text"
    eq(c.d.execute_script("return window.__pwned === undefined"), True, "no script ran")
    eq(len(css(c, "main script, main img")), 0, "no element from the title")
    open_page(c, f"/ui/jobs?queue=pdf", ready="#jobs")
    until(c, lambda d: css(c, f'#jobs tr[data-job="{job_id}"]'), "the job listed")
    eq(text(c, f'#jobs tr[data-job="{job_id}"] .title'), EVIL, "the title cell")
    eq(c.d.execute_script("return window.__pwned === undefined"), True, "no script ran")
    no_console_errors(c)


@suite.test
def test_every_page_links_to_the_api_reference(c):
    """Each page's header links to /docs/api (the token prompt's too); following the
    link leaves the dashboard for the reference page, which draws without a console
    error under its own CSP."""
    job_id = export(c, "Linked")
    for path in ("/ui", "/ui/queues/pdf", "/ui/jobs", f"/ui/jobs/{job_id}", "/ui/workers",
                 "/ui/dead", "/ui/dead/pdf", "/ui/workers/nope"):
        open_page(c, path)
        links = css(c, 'header.top a[href="/docs/api"]')
        eq([a.text for a in links], ["API reference"], f"{path}: the link in the header")
    no_console_errors(c)
    c.d.get(url(c, "/ui", c.tok))
    until(c, lambda d: d.find_element(By.ID, "token").is_displayed(), "the token prompt")
    assert css(c, 'header.top a[href="/docs/api"]')[0].is_displayed(), "the link, before a token"
    no_console_errors(c, allow=("401",))  # the page's first look, without a token
    open_page(c, "/ui/workers")
    css(c, 'header.top a[href="/docs/api"]')[0].click()
    until(c, lambda d: d.current_url == url(c, "/docs/api") and css(c, "#op-listWorkers"),
          "the reference page")
    assert css(c, 'a[href="#op-submitExport"]'), "the reference's own index"
    no_console_errors(c)


@suite.test
def test_with_tokens_no_data_shows_without_one(c):
    secret_job = video_job(c)
    c.d.get(url(c, "/ui", c.tok))
    until(c, lambda d: d.find_element(By.ID, "token").is_displayed(), "the token prompt")
    time.sleep(0.3)
    eq(text(c, "#main"), "", "no data on the page")
    eq(css(c, "section.card, #recent, table"), [], "no queue or job shown")
    assert secret_job not in c.d.page_source, "no job id anywhere in the document"
    shot(c, "token")
    # a wrong token is refused and stays out of storage
    css(c, "#token-input")[0].send_keys("wrong")
    css(c, "#token-form button")[0].click()
    until(c, lambda d: "refused" in text(c, "#token-error"), "the refusal")
    eq(c.d.execute_script("return sessionStorage.getItem('spool.token')"), None, "not kept")
    eq(c.d.get_cookies(), [], "no cookies")
    css(c, "#token-input")[0].send_keys(TOKEN)
    css(c, "#token-form button")[0].click()
    until(c, lambda d: css(c, "#recent"), "the overview with the token")
    eq(c.d.execute_script("return sessionStorage.getItem('spool.token')"), TOKEN, "kept in the tab")
    # an output needs the token: the page fetches it with the header into a blob: URL
    w = Worker(c.api, queues="video")
    try:
        r = Http("127.0.0.1", c.tok.port, TOKEN).post(
            "/v1/videos", {"source_url": "http://example.com/v.mp4"})
        eq(r.status, 202, "a job through the API with tokens")
        vid = r.json()["id"]
        w.take(vid)
        eq(w.cmd("output out.mp4 video/mp4 4096"), "ok")
        eq(w.cmd("succeed"), "ok succeeded")
    finally:
        w.close()
    open_page(c, f"/ui/jobs/{vid}", api=c.tok, ready='[data-output="out.mp4"]')
    until(c, lambda d: (css(c, '[data-output="out.mp4"] video')[0].get_attribute("src") or "")
          .startswith("blob:"), "the video from a blob: URL")
    shot(c, "job-video")
    eq(c.d.get_cookies(), [], "no cookies")
    # 401s of the refused token and the unauthenticated first look are expected
    no_console_errors(c, allow=("401",))


if __name__ == "__main__":
    sys.exit(suite.run(setup, teardown))
