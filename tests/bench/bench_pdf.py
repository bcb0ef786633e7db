#!/usr/bin/python3
"""make bench-pdf: 10,000, 100,000 and 1,000,000 rows x 8 columns to PDF, spool against
ReportLab, side by side in one run, on the same generated data.

Contenders (every one writes the same table: title, header on every page, measured
column widths, text wrapped to 3 lines then cut with an ellipsis, right-aligned
formatted numbers, dates, zebra rows, "Page N of M", DejaVu TrueType embedded, A4,
compression on):

  spool export pipeline     bench_pdf_driver: the code spool-pdf's handler runs (dataset
                            reader, three passes, libharu, the file writer) on the CSV
                            file, at the default compression and at "fast"
  spool-pdf worker          the real worker end to end: the job enqueued in a private
                            Redis, the dataset in the blob store, until "succeeded"
                            (at 100,000 rows)
  ReportLab canvas          drawn by hand on reportlab.pdfgen.canvas (two passes): the
                            headline comparison, at every size
  spool, CJK + Hebrew + ...  the pipeline again at the largest size on the same table
                            with Chinese, Japanese, Korean, Hebrew and Arabic names and
                            cities: the fallback font loaded and FriBidi at work (one
                            run, spool only: memory must stay as flat)
  ReportLab LongTable       platypus LongTable with Paragraph cells (the idiomatic API),
                            at 10,000 and 20,000 rows only: its time grows with the
                            square of the rows (3,129 s at 100,000)

Each side runs as its own process and reports its own peak RSS (VmHWM from
/proc/self/status; the worker's from /proc/PID/status): getrusage's ru_maxrss of a
child also counts the forking Python's memory. Per size: wall and CPU (user+sys)
seconds, median and spread (min-max) over the runs; peak RSS (max); file size; pages;
the ratios against spool at the default compression; fast against default. Last, spool's
peak RSS at the largest size against the 64 MiB target (PASS/MISS). spool and the canvas
alternate within each round, so other load on the machine falls on both.

Environment: BENCH_PDF_SIZES (10000,100000,1000000), BENCH_PDF_LEVELS (default,fast),
BENCH_PDF_SPOOL_RUNS (10000:5,100000:3,1000000:2), BENCH_PDF_CANVAS_RUNS
(10000:3,100000:2,1000000:1), BENCH_PDF_CANVAS=0 / BENCH_PDF_LONGTABLE=0 to skip a peer,
BENCH_PDF_SCRIPTS=0 to skip the mixed-scripts run,
BENCH_PDF_LONGTABLE_SIZES (10000,20000: added to the sizes), BENCH_PDF_WORKER_SIZES
(100000), BENCH_PDF_DIR for the work files (default a temp dir, removed).
"""
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from harness import Redis, wait_until  # noqa: E402

BIN = os.environ.get("SPOOL_BIN_DIR", os.path.join(ROOT, "bin"))
TEST_BIN = os.environ.get("SPOOL_TEST_BIN_DIR", os.path.join(ROOT, "build/release/tests"))
DRIVER = sys.argv[1] if len(sys.argv) > 1 else os.path.join(TEST_BIN, "bench", "bench_pdf_driver")
SIZES = [int(x) for x in os.environ.get("BENCH_PDF_SIZES", "10000,100000,1000000").split(",")]
LEVELS = [x for x in os.environ.get("BENCH_PDF_LEVELS", "default,fast").split(",") if x]
SPOOL_RUNS = os.environ.get("BENCH_PDF_SPOOL_RUNS", "10000:5,100000:3,1000000:2")
CANVAS = os.environ.get("BENCH_PDF_CANVAS", "1") != "0"
CANVAS_RUNS = os.environ.get("BENCH_PDF_CANVAS_RUNS", "10000:3,100000:2,1000000:1")
LONGTABLE = os.environ.get("BENCH_PDF_LONGTABLE", "1") != "0"
LONGTABLE_SIZES = [int(x) for x in os.environ.get("BENCH_PDF_LONGTABLE_SIZES",
                                                  "10000,20000").split(",")]
SCRIPTS = os.environ.get("BENCH_PDF_SCRIPTS", "1") != "0"
WORKER_SIZES = [int(x) for x in os.environ.get("BENCH_PDF_WORKER_SIZES", "100000").split(",")
                if x]
REPORTLAB = os.path.join(HERE, "bench_pdf_reportlab.py")

PARAMS = {"title": "Sales report — Q1 2024", "author": "spool bench", "columns": [
    {"key": "id", "label": "ID", "format": "number", "decimals": 0},
    {"key": "date", "label": "Date", "format": "date"},
    {"key": "customer", "label": "Customer"},
    {"key": "city", "label": "City"},
    {"key": "category", "label": "Category"},
    {"key": "quantity", "label": "Qty", "format": "number"},
    {"key": "price", "label": "Price", "format": "number", "decimals": 2},
    {"key": "note", "label": "Note"}]}


def generate(path, rows, scripts=False):
    """The dataset: 8 columns, names and cities with accents, Cyrillic and Greek; with
    scripts, also Chinese, Japanese, Korean (the fallback font), Hebrew and Arabic
    (shaped and reordered) in half of the names and cities."""
    rnd = random.Random(7)
    names = ["Ana", "Björn", "Zoë", "Łukasz", "Иван", "Σοφία", "José", "Amélie", "Chloé", "Søren"]
    cities = ["Paris", "Köln", "Zürich", "Kraków", "Москва", "Αθήνα", "São Paulo", "Reykjavík",
              "Málaga", "Genève"]
    if scripts:
        names += ["山田", "太郎", "王小明", "김민준", "דוד", "שרה", "محمد", "فاطمة", "さくら", "李娜"]
        cities += ["東京", "北京市", "서울", "ירושלים", "القاهرة", "大阪", "上海", "부산", "חיפה",
                   "دبي"]
    cats = ["hardware", "software", "services", "consulting", "training"]
    words = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
             "incididunt ut labore").split()
    with open(path, "w", encoding="utf-8") as f:
        f.write("id,date,customer,city,category,quantity,price,note\n")
        for i in range(rows):
            note = " ".join(rnd.choice(words) for _ in range(rnd.randint(2, 14)))
            f.write(f"{i + 1},2024-{i % 12 + 1:02d}-{i % 28 + 1:02d}T10:00:00Z,"
                    f"{rnd.choice(names)} {rnd.choice(names)},{rnd.choice(cities)},"
                    f"{rnd.choice(cats)},{rnd.randint(1, 5000)},{rnd.random() * 10000:.2f},"
                    f"\"{note}\"\n")


def run_child(argv, env=None):
    """Run argv as its own process; return (wall s, CPU s, its JSON line). Its peak RSS
    is in the JSON (vm_hwm_kb, read by the child itself from /proc/self/status): the
    ru_maxrss wait4 gives a child of this script also counts this Python process's
    memory (the child's pages before its exec)."""
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=dict(os.environ, **(env or {})))
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    secs = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({p.returncode}):\n{err.decode()[-2000:]}")
    return secs, ru.ru_utime + ru.ru_stime, json.loads(out.decode().strip().splitlines()[-1])


def pdf_pages(path):
    out = subprocess.run(["pdfinfo", path], stdout=subprocess.PIPE, check=True).stdout.decode()
    return int([l for l in out.splitlines() if l.startswith("Pages:")][0].split()[1])


def hwm_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def run_worker(work, csv):
    """The real spool-pdf, end to end: enqueue, wait for succeeded. Its peak RSS is the
    worker process's own VmHWM; CPU from /proc/PID/stat (utime + stime)."""
    pdfq = os.path.join(TEST_BIN, "pdfq")
    data = os.path.join(work, "blobs")
    redis = Redis()
    worker = None
    try:
        env = dict(os.environ, SPOOL_REDIS_URL=redis.url, SPOOL_DATA_DIR=data,
                   SPOOL_LOG_LEVEL="warn", SPOOL_PDF_TIME_LIMIT="20m")
        worker = subprocess.Popen([os.path.join(BIN, "spool-pdf")], env=env,
                                  stderr=subprocess.DEVNULL)
        q = lambda *a: subprocess.run([pdfq, *a], stdout=subprocess.PIPE, check=True,
                                      env=env).stdout.decode().strip()
        job = q("newid")
        q("put", data, job, "dataset", csv)
        time.sleep(0.3)  # the worker is up and waiting on its queue
        cpu0 = cpu_secs(worker.pid)
        t0 = time.monotonic()
        q("enqueue", redis.url, job, json.dumps(PARAMS), json.dumps({"blob": "dataset",
                                                                     "format": "csv"}))
        rec = {}

        def done():
            rec.update(json.loads(q("get", redis.url, job)))
            return rec["state"] in ("succeeded", "failed")
        wait_until(done, 1200, 0.01, what="the benchmark job")
        secs = time.monotonic() - t0
        if rec["state"] != "succeeded":
            raise SystemExit(f"worker job failed: {rec}")
        return {"wall": secs, "cpu": cpu_secs(worker.pid) - cpu0, "rss_kb": hwm_kb(worker.pid),
                "path": q("path", data, job, "export.pdf")}
    finally:
        if worker:
            worker.terminate()
            worker.wait(30)
        redis.destroy()


def cpu_secs(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def runs_for(rows, spec):
    """BENCH_PDF_REPEAT-style spec "10000:5,100000:3,1000000:2" -> runs at rows."""
    table = dict((int(k), int(v)) for k, v in (x.split(":") for x in spec.split(",")))
    return table.get(rows, min(table.values()))


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main():
    work = os.environ.get("BENCH_PDF_DIR") or tempfile.mkdtemp(prefix="spool-bench-pdf-")
    os.makedirs(work, exist_ok=True)
    t_start = time.monotonic()
    results = []
    try:
        params = os.path.join(work, "params.json")
        with open(params, "w", encoding="utf-8") as f:
            json.dump(PARAMS, f, ensure_ascii=False)
        print(f"bench-pdf: sizes {', '.join(f'{n:,}' for n in SIZES)} rows x 8 columns, A4, "
              f"DejaVu Sans embedded; {os.cpu_count()} cores, load average {loadavg()}",
              flush=True)
        print("  each side in its own process: wall and CPU (user+sys) seconds as median "
              "(min-max) over the runs, its own peak RSS (VmHWM) as the max over the runs",
              flush=True)
        sizes = sorted(set(SIZES) | (set(LONGTABLE_SIZES) if LONGTABLE else set()))
        for rows in sizes:
            peers_only = rows not in SIZES  # a LongTable size: no other side
            csv = os.path.join(work, f"data-{rows}.csv")
            generate(csv, rows)
            print(f"\n{rows:,} rows ({os.path.getsize(csv) / 1e6:.1f} MB CSV), load average "
                  f"{loadavg()}", flush=True)
            print(f"  {'side':<34} {'runs':>4} {'wall s':>22} {'CPU s':>8} {'RSS MiB':>8} "
                  f"{'file MB':>8} {'pages':>6}", flush=True)
            size = {}

            def record(name, runs, path):
                pages = pdf_pages(path)
                r = {"rows": rows, "name": name, "runs": len(runs), "pages": pages,
                     "wall": median([x[0] for x in runs]), "wall_min": min(x[0] for x in runs),
                     "wall_max": max(x[0] for x in runs), "cpu": median([x[1] for x in runs]),
                     "rss_mib": max(x[2] for x in runs) / 1024, "bytes": os.path.getsize(path)}
                results.append(r)
                size[name] = r
                spread = (f"{r['wall']:7.2f} ({r['wall_min']:.2f}-{r['wall_max']:.2f})"
                          if len(runs) > 1 else f"{r['wall']:7.2f}")
                print(f"  {name:<34} {len(runs):>4} {spread:>22} {r['cpu']:8.2f} "
                      f"{r['rss_mib']:8.1f} {r['bytes'] / 1e6:8.1f} {pages:>6}", flush=True)
                os.unlink(path)

            # spool and the canvas peer alternate within each round, so load from other
            # work on the machine falls on both
            n_spool = 1 if peers_only else runs_for(rows, SPOOL_RUNS)
            n_canvas = runs_for(rows, CANVAS_RUNS) if CANVAS and not peers_only else 0
            spool = {level: [] for level in LEVELS}
            canvas = []
            for i in range(max(n_spool, n_canvas)):
                for level in LEVELS:
                    if i < n_spool:
                        out = os.path.join(work, f"spool-{level}.pdf")
                        wall, cpu, j = run_child([DRIVER, params, csv, "csv", out],
                                                 {"SPOOL_PDF_COMPRESSION": level})
                        spool[level].append((wall, cpu, j["vm_hwm_kb"]))
                if i < n_canvas:
                    out = os.path.join(work, "canvas.pdf")
                    wall, cpu, j = run_child(["/usr/bin/python3", REPORTLAB, "canvas", csv,
                                              params, out])
                    canvas.append((wall, cpu, j["vm_hwm_kb"]))
            for level in LEVELS:
                record(f"spool export pipeline ({level})", spool[level],
                       os.path.join(work, f"spool-{level}.pdf"))
            if canvas:
                record("ReportLab canvas", canvas, os.path.join(work, "canvas.pdf"))
            if rows in WORKER_SIZES and not peers_only:
                w = run_worker(work, csv)
                record("spool-pdf worker, end to end", [(w["wall"], w["cpu"], w["rss_kb"])],
                       w["path"])
            if SCRIPTS and rows == max(SIZES) and not peers_only:
                mixed = os.path.join(work, f"mixed-{rows}.csv")
                generate(mixed, rows, scripts=True)
                out = os.path.join(work, "spool-mixed.pdf")
                wall, cpu, j = run_child([DRIVER, params, mixed, "csv", out])
                os.unlink(mixed)
                if j.get("missing_glyphs"):
                    raise SystemExit(f"{j['missing_glyphs']} characters had no font")
                record("spool, CJK + Hebrew + Arabic text", [(wall, cpu, j["vm_hwm_kb"])], out)
            if LONGTABLE and rows in LONGTABLE_SIZES:
                out = os.path.join(work, "longtable.pdf")
                wall, cpu, j = run_child(["/usr/bin/python3", REPORTLAB, "longtable", csv,
                                          params, out])
                record("ReportLab LongTable", [(wall, cpu, j["vm_hwm_kb"])], out)
            os.unlink(csv)
            base = size.get("spool export pipeline (default)")
            for name in ("ReportLab canvas", "ReportLab LongTable"):
                if base and name in size:
                    o = size[name]
                    print(f"  {name} / spool (default): wall {o['wall'] / base['wall']:.1f}x, "
                          f"CPU {o['cpu'] / base['cpu']:.1f}x, peak RSS "
                          f"{o['rss_mib'] / base['rss_mib']:.0f}x", flush=True)
            fast = size.get("spool export pipeline (fast)")
            if base and fast:
                print(f"  fast vs default: CPU {base['cpu'] / fast['cpu']:.2f}x faster, file "
                      f"{fast['bytes'] / base['bytes']:.2f}x larger", flush=True)

        print(flush=True)
        top = max(SIZES)
        for r in results:
            if r["rows"] == top and r["name"].startswith("spool"):
                ok = r["rss_mib"] <= 64
                print(f"peak RSS of {r['name']} at {top:,} rows: {r['rss_mib']:.1f} MiB "
                      f"(target <= 64 MiB): {'PASS' if ok else 'MISS'}", flush=True)
        print(f"bench-pdf took {time.monotonic() - t_start:.0f} s", flush=True)
        print(json.dumps({"results": results}))
    finally:
        if not os.environ.get("BENCH_PDF_DIR"):
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
