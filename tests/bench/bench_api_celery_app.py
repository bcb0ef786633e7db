"""The Flask + Celery baseline for `make bench-api`: the same two endpoints a user would
otherwise write, doing the same work as spool-api. POST /v1/exports parses and checks
the JSON body and writes its rows as NDJSON (one compact row per line, as spool-api's
canonical rows); rows of up to BENCH_INLINE_MAX bytes (spool-api's
SPOOL_INLINE_DATASET_MAX) travel in the message, larger ones are written to a file
(BENCH_DATA_DIR/<id>/dataset: a directory per job, a temporary name renamed into place,
no fsync, as spool-api below 1 MiB) and the message names the file. It enqueues with
Celery (Redis broker). GET /v1/jobs/<id> reads the task's state from the Redis result
backend. No Celery worker runs: only the enqueue and the status read are measured, as
for spool-api."""
import json
import os
import uuid

from celery import Celery
from flask import Flask, jsonify, request

REDIS_URL = os.environ["BENCH_REDIS_URL"]
DATA_DIR = os.environ["BENCH_DATA_DIR"]
INLINE_MAX = int(os.environ.get("BENCH_INLINE_MAX", "16384"))
app = Flask(__name__)
celery = Celery("bench", broker=REDIS_URL, backend=REDIS_URL)
celery.conf.task_ignore_result = False
celery.conf.broker_pool_limit = 10


@celery.task(name="pdf.export")
def export(params, data):  # runs in a worker; never called here
    return None


@app.post("/v1/exports")
def create_export():
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("title"), str) \
            or not isinstance(body.get("rows"), list) or not body["rows"] \
            or not all(isinstance(r, (dict, list)) for r in body["rows"]):
        return jsonify({"error": {"code": "invalid_field", "message": "title and rows"}}), 422
    params = {k: body[k] for k in ("title", "columns", "page_size", "orientation", "font")
              if k in body}
    rows = "".join(json.dumps(r, separators=(",", ":"), ensure_ascii=False) + "\n"
                   for r in body["rows"]).encode()
    job_id = str(uuid.uuid4())
    if len(rows) <= INLINE_MAX:
        data = {"inline": rows.decode(), "format": "ndjson", "bytes": len(rows)}
    else:
        d = os.path.join(DATA_DIR, job_id)
        os.makedirs(d)
        tmp = os.path.join(d, "dataset.tmp")
        with open(tmp, "wb") as f:
            f.write(rows)
        os.rename(tmp, os.path.join(d, "dataset"))
        data = {"file": os.path.join(d, "dataset"), "format": "ndjson", "bytes": len(rows)}
    export.apply_async((params, data), task_id=job_id)
    return jsonify({"id": job_id, "type": "pdf.export", "state": "queued"}), 202, \
        {"Location": f"/v1/jobs/{job_id}"}


@app.get("/v1/jobs/<job_id>")
def get_job(job_id):
    r = celery.AsyncResult(job_id)
    return jsonify({"id": job_id, "state": r.state.lower()})
