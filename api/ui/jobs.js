// jobs.js - /ui/jobs: the jobs, newest first, filtered by state, type and queue (kept in
// the address: ?state=&type=&queue=, and ?before= for older pages), a box to find one
// by id, cancel and retry on each row; rows change as events arrive.

import { api } from './api.js';
import { jobActions } from './actions.js';
import { el, fill, jobLink, jobTitle, progressBar, stateBadge, table, throttle, time } from './dom.js';

const STATES = ['', 'scheduled', 'queued', 'running', 'retrying', 'succeeded', 'failed', 'cancelled'];
const PAGE = 25;
const ID_RE = /^[A-Za-z0-9_-]{1,64}$/;

export async function jobsPage(ctx) {
  const { main, query } = ctx;
  const state = query.get('state') || '';
  const type = query.get('type') || '';
  const queue = query.get('queue') || '';
  const before = query.get('before') || '';

  const params = new URLSearchParams();
  if (state) params.set('state', state);
  if (type) params.set('type', type);
  if (queue) params.set('queue', queue);
  params.set('limit', String(PAGE));
  if (before) params.set('before', before);
  const [data, queues] = await Promise.all([
    api('/v1/jobs?' + params.toString()),
    api('/v1/queues').catch(() => ({ queues: [] })),
  ]);

  const rows = new Map();
  const tbody = el('tbody', {});
  function row(j) {
    const tr = el('tr', { 'data-job': j.id },
      el('td', {}, jobLink(j.id)),
      el('td', {}, j.type),
      el('td', {}, j.queue),
      el('td', { class: 'title' }, jobTitle(j)),
      el('td', { class: 'job-state' }, stateBadge(j.state)),
      el('td', { class: 'job-progress' }, progressBar(j.progress)),
      el('td', {}, `${j.attempts}/${j.max_attempts}`),
      el('td', {}, time(j.created_at)),
      el('td', { class: 'job-actions' }, jobActions(j, ctx, update)));
    rows.set(j.id, { tr, job: j });
    return tr;
  }
  function update(j) {
    const r = rows.get(j.id);
    if (!r) return;
    r.job = j;
    fill(r.tr.querySelector('.job-state'), stateBadge(j.state));
    fill(r.tr.querySelector('.job-progress'), progressBar(j.progress));
    fill(r.tr.querySelector('.job-actions'), jobActions(j, ctx, update));
  }
  for (const j of data.jobs || []) tbody.append(row(j));
  if (!rows.size) tbody.append(el('tr', {}, el('td', { colspan: 9, class: 'empty' }, 'No jobs match.')));

  const filterForm = el('form', { class: 'filters', id: 'filters' },
    el('label', {}, 'State', el('select', { name: 'state' },
      STATES.map((s) => el('option', { value: s, selected: s === state }, s || 'any')))),
    el('label', {}, 'Type', el('input', { name: 'type', value: type, placeholder: 'video.transcode', size: 16 })),
    el('label', {}, 'Queue', el('select', { name: 'queue' },
      el('option', { value: '' }, 'any'),
      (queues.queues || []).map((q) => el('option', { value: q.name, selected: q.name === queue }, q.name)))),
    el('button', { type: 'submit' }, 'Filter'));
  filterForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const f = new FormData(filterForm);
    const p = new URLSearchParams();
    for (const k of ['state', 'type', 'queue']) if (f.get(k)) p.set(k, String(f.get(k)).trim());
    ctx.navigate('/ui/jobs' + (p.toString() ? '?' + p : ''));
  });
  const findForm = el('form', { class: 'filters', id: 'find' },
    el('label', {}, 'Find a job by id', el('input', { name: 'id', size: 40, placeholder: 'job id', required: true })),
    el('button', { type: 'submit' }, 'Open'));
  findForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const id = String(new FormData(findForm).get('id') || '').trim();
    if (!ID_RE.test(id)) {
      ctx.notice('That is not a job id.', true);
      return;
    }
    ctx.navigate('/ui/jobs/' + encodeURIComponent(id));
  });

  const pager = el('div', { class: 'pager' });
  if (before) {
    const p = new URLSearchParams(params);
    p.delete('before');
    p.delete('limit');
    pager.append(el('a', { href: '/ui/jobs' + (p.toString() ? '?' + p : ''), 'data-route': '' }, '« Newest'));
  }
  if (data.next) {
    const p = new URLSearchParams(params);
    p.set('before', data.next);
    p.delete('limit');
    pager.append(el('a', { href: '/ui/jobs?' + p, 'data-route': '', id: 'older' }, 'Older »'));
  }

  const t = table(['id', 'type', 'queue', 'title', 'state', 'progress', 'attempts', 'created', ''], []);
  t.replaceChild(tbody, t.querySelector('tbody'));
  t.id = 'jobs';
  fill(main, el('h1', {}, 'Jobs'), findForm, filterForm, t, pager);

  // Known rows follow their events; a new job that matches shows on the first page.
  const reload = throttle(() => { if (ctx.alive()) jobsPage(ctx).catch(() => {}); }, 2000);
  ctx.live('/v1/events' + (queue ? '?queue=' + encodeURIComponent(queue) : ''), (ev) => {
    if (!ev) return;
    const r = rows.get(ev.job_id);
    if (r) {
      update(Object.assign({}, r.job, { state: ev.state, progress: ev.progress }));
    } else if (!before && (!type || ev.type === type) && (!state || ev.state === state)) {
      reload();
    }
  });
}
