// workers.js - /ui/workers: the live workers: host, queues, concurrency, the jobs each
// runs now (with their progress) and its last heartbeat; redrawn as jobs start and end.

import { api } from './api.js';
import { ago, el, fill, jobLink, progressBar, table, throttle, time } from './dom.js';

export async function workersPage(ctx) {
  const { main } = ctx;
  const body = el('tbody', {});

  async function refresh() {
    const data = await api('/v1/workers');
    const ws = data.workers || [];
    fill(body, ws.length ? ws.map((w) => el('tr', { 'data-worker': w.id },
      el('td', {}, w.host, el('div', { class: 'muted mono' }, w.id)),
      el('td', {}, w.kind || ''),
      el('td', {}, (w.queues || []).join(', ')),
      el('td', {}, String(w.concurrency)),
      el('td', { class: 'current' }, (w.jobs || []).length
        ? (w.jobs || []).map((j) => el('div', {}, jobLink(j.id), ' ', j.type, ' ', progressBar(j.progress)))
        : el('span', { class: 'muted' }, 'idle')),
      el('td', { title: time(w.last_seen) }, ago(w.last_seen)),
      el('td', {}, time(w.started_at)),
      el('td', {}, `${w.processed} / ${w.failed}`)))
      : el('tr', {}, el('td', { colspan: 8, class: 'empty' }, 'No live workers.')));
  }

  await refresh();
  const t = table(['host', 'kind', 'queues', 'concurrency', 'running now', 'last heartbeat',
    'started', 'processed / failed'], []);
  t.replaceChild(body, t.querySelector('tbody'));
  t.id = 'workers';
  fill(main, el('h1', {}, 'Workers'), t);
  const soon = throttle(() => { if (ctx.alive()) refresh().catch(() => {}); }, 1000);
  ctx.live('/v1/events', () => soon());
}
