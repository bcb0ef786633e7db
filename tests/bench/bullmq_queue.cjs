// BullMQ peer of make bench-queue (tests/bench/bench_queue.sh): the same phases as
// bench_queue.c, the same job count, the same per-job work. BullMQ as its docs
// recommend: a Queue for producing (add one at a time, addBulk for batches), Worker
// processes with concurrency, default job options (completed jobs are kept, as spool
// keeps finished records for its retention period).
//
// The job's work is what a spool consumer does besides the queue: append one byte to
// a file, which the driver counts to see every job done. Phases:
//   enqueue_one    JOBS Queue.add calls, each awaited
//   enqueue_batch  JOBS jobs through Queue.addBulk, 1000 per call
//   e2e            CONSUMERS worker processes (Worker, concurrency CONCURRENCY each),
//                  already waiting; JOBS jobs added with addBulk; until every job ran
//   latency        one idle worker process with the default concurrency (1); add to
//                  the processor starting (process.hrtime, CLOCK_MONOTONIC), SAMPLES times
//
//   node bullmq_queue.cjs NPM_DIR PORT JOBS CONSUMERS CONCURRENCY SAMPLES COST_CMD|-
'use strict';
const fs = require('fs');
const path = require('path');
const { fork, execFileSync } = require('child_process');

const [npmDir, port] = process.argv.slice(2, 4);
const { Queue, Worker } = require(path.join(npmDir, 'node_modules', 'bullmq'));
const IORedis = require(path.join(npmDir, 'node_modules', 'ioredis'));
const connection = { host: '127.0.0.1', port: Number(port), db: 2, maxRetriesPerRequest: null };

if (process.argv[4] === 'worker') {
  // A worker process: worker QUEUE CONCURRENCY DONE_FILE|latency
  const [, , , , , queue, concurrency, done] = process.argv;
  const fd = done === 'latency' ? -1 : fs.openSync(done, 'a');
  const w = new Worker(queue, async () => {
    if (fd >= 0) fs.writeSync(fd, 'x');
    else process.send(process.hrtime.bigint().toString());
  }, { connection, concurrency: Number(concurrency) });
  w.waitUntilReady().then(() => process.send('ready'));
  process.on('SIGTERM', () => w.close().then(() => process.exit(0)));
  return;
}

const [jobs, consumers, concurrency, samples] = process.argv.slice(4, 8).map(Number);
const costCmd = process.argv[8];

function cost(what, n, label) {
  if (costCmd === '-') return;
  const args = costCmd.split(' ');
  const out = execFileSync(args[0], args.slice(1).concat(n ? [what, String(n), label] : [what]));
  process.stdout.write(out);
}

function startWorkers(queue, n, conc, done, onMessage) {
  return Promise.all(Array.from({ length: n }, () => new Promise((resolve) => {
    const p = fork(__filename, [npmDir, port, 'worker', queue, String(conc), done]);
    p.on('message', (m) => (m === 'ready' ? resolve(p) : onMessage && onMessage(m)));
  })));
}

function stopWorkers(ps) {
  return Promise.all(ps.map((p) => new Promise((resolve) => {
    p.on('exit', resolve);
    p.kill('SIGTERM');
  })));
}

async function addBulk(q, n) {
  for (let done = 0; done < n; done += 1000) {
    const m = Math.min(1000, n - done);
    await q.addBulk(Array.from({ length: m }, () => ({ name: 'noop', data: {} })));
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => Number(process.hrtime.bigint()) / 1e9;

async function main() {
  const admin = new IORedis(connection);
  await admin.flushdb();
  const one = new Queue('one', { connection });
  await one.waitUntilReady();

  cost('reset');
  let t0 = now();
  for (let i = 0; i < jobs; i++) await one.add('noop', {});
  let t1 = now();
  console.log(`enqueue_one_jobs_per_s ${(jobs / (t1 - t0)).toFixed(0)} jobs/s`);
  cost('report', jobs, 'enqueue_one');

  const enq = new Queue('enq', { connection });
  cost('reset');
  t0 = now();
  await addBulk(enq, jobs);
  t1 = now();
  console.log(`enqueue_batch_jobs_per_s ${(jobs / (t1 - t0)).toFixed(0)} jobs/s`);
  cost('report', jobs, 'enqueue_batch');

  const done = path.join(require('os').tmpdir(), `bullmq-bench-done-${process.pid}`);
  fs.writeFileSync(done, '');
  const e2e = new Queue('e2e', { connection });
  await e2e.waitUntilReady();
  const ws = await startWorkers('e2e', consumers, concurrency, done);
  await sleep(500);
  cost('reset');
  t0 = now();
  await addBulk(e2e, jobs);
  const deadline = t0 + 900;
  let n = 0;
  while ((n = fs.statSync(done).size) < jobs && now() < deadline) await sleep(1);
  t1 = now();
  console.log(`e2e_jobs_per_s ${(n / (t1 - t0)).toFixed(0)} jobs/s (${consumers} consumers x ` +
              `concurrency ${concurrency}, ${n} jobs)`);
  cost('report', jobs, 'e2e');
  await stopWorkers(ws);
  fs.unlinkSync(done);

  if (samples > 0) {
    const lat = new Queue('lat', { connection });
    let waiter = null;
    const [lw] = await startWorkers('lat', 1, 1, 'latency', (m) => waiter && waiter(BigInt(m)));
    await sleep(300);
    const d = [];
    for (let i = 0; i < samples; i++) {
      await sleep(2);
      const started = new Promise((resolve) => { waiter = resolve; });
      const sent = process.hrtime.bigint();
      await lat.add('noop', {});
      d.push(Number((await started) - sent) / 1e6);
    }
    await stopWorkers([lw]);
    d.sort((a, b) => a - b);
    console.log(`latency_p50 ${d[Math.floor(d.length / 2)].toFixed(3)} ms`);
    console.log(`latency_p99 ${d[Math.floor(d.length * 99 / 100)].toFixed(3)} ms`);
    await lat.close();
  }
  await admin.flushdb();
  await Promise.all([one.close(), enq.close(), e2e.close()]);
  admin.disconnect();
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
