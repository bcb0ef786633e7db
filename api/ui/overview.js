// overview.js - /ui (every queue) and /ui/queues/{name} (one): per queue the jobs
// waiting, running, retrying and dead, its workers, pause/resume, the throughput chart;
// and the latest jobs, updated from the event stream as they are queued, run and end.

import { api } from './api.js';
import { el, fill, jobLink, jobTitle, link, progressBar, stateBadge, table, throttle, time } from './dom.js';
import { historyChart } from './qchart.js';

const RECENT = 15;

function count(label, value, cls) {
  return el('div', { class: 'count ' + (cls || '') }, el('b', {}, String(value ?? 0)),
    el('span', {}, label));
}

// A queue's card; update(q) redraws its numbers.
function queueCard(q, ctx, charts) {
  const counts = el('div', { class: 'counts' });
  const title = el('h2', {});
  const actions = el('span', { class: 'actions' });
  const chart = historyChart(q.name);
  charts.set(q.name, chart);
  const card = el('section', { class: 'card', 'data-queue': q.name }, title, counts, chart.node);

  async function toggle(paused) {
    try {
      await api('/v1/queues/' + encodeURIComponent(q.name) + (paused ? '/resume' : '/pause'),
        { method: 'POST' });
      ctx.refreshQueues();
    } catch (e) {
      ctx.notice(e.status === 404 ? 'This spool-api cannot pause queues.' : e.message, true);
    }
  }

  function update(nq) {
    fill(title, link('/ui/queues/' + encodeURIComponent(nq.name), nq.name),
      nq.paused ? el('span', { class: 'paused', 'data-paused': '' }, 'paused') : null, actions);
    // Pausing shows only where spool-api reports it (GET /v1/queues "paused").
    fill(actions, typeof nq.paused === 'boolean'
      ? el('button', { type: 'button', class: nq.paused ? 'primary' : '', 'data-action': nq.paused ? 'resume' : 'pause',
        onclick: () => toggle(nq.paused) }, nq.paused ? 'Resume' : 'Pause')
      : null);
    fill(counts,
      count('waiting', nq.depth, 'waiting'),
      count('running', nq.running, 'running'),
      count('retrying', nq.delayed, 'retrying'),
      el('a', { href: '/ui/dead/' + encodeURIComponent(nq.name), 'data-route': '', class: 'count dead' },
        el('b', {}, String(nq.dead ?? 0)), el('span', {}, 'dead')),
      count('workers', nq.workers, 'workers'),
      count('succeeded', nq.totals ? nq.totals.succeeded : 0, 'succeeded'));
  }
  update(q);
  return { card, update };
}

function jobRow(j) {
  return el('tr', { 'data-job': j.id },
    el('td', {}, jobLink(j.id)),
    el('td', {}, j.type || ''),
    el('td', {}, j.queue || ''),
    el('td', { class: 'title' }, jobTitle(j)),
    el('td', { class: 'job-state' }, stateBadge(j.state)),
    el('td', { class: 'job-progress' }, progressBar(j.progress)),
    el('td', {}, time(j.created_at || j.at)));
}

export async function overviewPage(ctx, only) {
  const { main } = ctx;
  const cardsNode = el('div', { class: 'cards' });
  const recentBody = el('tbody', {});
  const charts = new Map();
  const cards = new Map();
  const recent = new Map(); // job id -> row

  async function refreshQueues() {
    const data = await api('/v1/queues');
    const queues = (data.queues || []).filter((q) => !only || q.name === only);
    if (only && !queues.length) queues.push({ name: only, depth: 0, running: 0, delayed: 0, dead: 0, workers: 0 });
    for (const q of queues) {
      let c = cards.get(q.name);
      if (!c) {
        c = queueCard(q, ctx, charts);
        cards.set(q.name, c);
        cardsNode.append(c.card);
        charts.get(q.name).update();
      } else {
        c.update(q);
      }
    }
    if (!queues.length) fill(cardsNode, el('p', { class: 'empty' }, 'No queue has seen a job yet.'));
  }
  ctx.refreshQueues = () => refreshQueues().catch((e) => ctx.notice(e.message, true));

  async function refreshRecent() {
    const q = only ? '&queue=' + encodeURIComponent(only) : '';
    const data = await api('/v1/jobs?limit=' + RECENT + q);
    recent.clear();
    const rows = (data.jobs || []).map((j) => {
      const r = jobRow(j);
      recent.set(j.id, r);
      return r;
    });
    fill(recentBody, rows.length ? rows : el('tr', {}, el('td', { colspan: 7, class: 'empty' }, 'No jobs yet.')));
  }

  // A job event: its row changes in place, or a new row goes on top.
  function onJobEvent(ev) {
    if (only && ev.queue !== only) return;
    let row = recent.get(ev.job_id);
    if (!row) {
      if (!recent.size) recentBody.replaceChildren();
      row = jobRow({ id: ev.job_id, type: ev.type, queue: ev.queue, state: ev.state,
        progress: ev.progress, at: ev.at });
      row.classList.add('fresh');
      recent.set(ev.job_id, row);
      recentBody.prepend(row);
      while (recentBody.children.length > RECENT) {
        const last = recentBody.lastElementChild;
        recent.delete(last.dataset.job);
        last.remove();
      }
    } else {
      fill(row.querySelector('.job-state'), stateBadge(ev.state));
      fill(row.querySelector('.job-progress'), progressBar(ev.progress));
    }
  }

  await refreshQueues();
  await refreshRecent();
  fill(main,
    el('h1', {}, only ? 'Queue ' + only : 'Overview'),
    cardsNode,
    el('h2', {}, only ? 'Latest jobs of ' + only : 'Latest jobs'),
    table(['id', 'type', 'queue', 'title', 'state', 'progress', 'created'], []),
    el('p', {}, link(only ? '/ui/jobs?queue=' + encodeURIComponent(only) : '/ui/jobs', 'All jobs…')));
  main.querySelector('table').replaceChild(recentBody, main.querySelector('tbody'));
  main.querySelector('table').id = 'recent';

  const queuesSoon = throttle(ctx.refreshQueues, 1000);
  const chartsSoon = throttle(() => charts.forEach((c) => c.update()), 5000);
  ctx.live('/v1/events' + (only ? '?queue=' + encodeURIComponent(only) : ''), (ev, type) => {
    if (type === 'gap') refreshRecent().catch(() => {});
    else onJobEvent(ev);
    queuesSoon();
    chartsSoon();
  });
  return { stop() { charts.forEach((c) => c.stop()); } };
}
