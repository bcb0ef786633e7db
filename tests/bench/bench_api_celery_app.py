"""The Flask + Celery baseline for `make bench-api`: the same two endpoints a user would
otherwise write, doing the same enqueue. POST /v1/exports parses and checks the JSON
body and enqueues it with Celery's .delay() (Redis broker); GET /v1/jobs/<id> reads the
task's state from the Redis result backend. No Celery worker runs: only the enqueue
and the status read are measured, as for spool-api."""
import os

from celery import Celery
from flask import Flask, jsonify, request

REDIS_URL = os.environ["BENCH_REDIS_URL"]
app = Flask(__name__)
celery = Celery("bench", broker=REDIS_URL, backend=REDIS_URL)
celery.conf.task_ignore_result = False
celery.conf.broker_pool_limit = 10


@celery.task(name="pdf.export")
def export(params, rows):  # runs in a worker; never called here
    return None


@app.post("/v1/exports")
def create_export():
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("title"), str) \
            or not isinstance(body.get("rows"), list) or not body["rows"]:
        return jsonify({"error": {"code": "invalid_field", "message": "title and rows"}}), 422
    params = {k: body[k] for k in ("title", "columns", "page_size", "orientation", "font")
              if k in body}
    result = export.delay(params, body["rows"])
    return jsonify({"id": result.id, "type": "pdf.export", "state": "queued"}), 202, \
        {"Location": f"/v1/jobs/{result.id}"}


@app.get("/v1/jobs/<job_id>")
def get_job(job_id):
    r = celery.AsyncResult(job_id)
    return jsonify({"id": job_id, "state": r.state.lower()})
