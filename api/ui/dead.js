// dead.js - /ui/dead (each queue's dead-letter count) and /ui/dead/{queue}: the jobs
// that failed for good, the latest first, a page at a time; retry or purge the ones
// ticked, or the whole set (purge asks twice).

import { api } from './api.js';
import { confirmButton, el, fill, jobLink, link, table, throttle, time } from './dom.js';

const PAGE = 50;

async function deadIndex(ctx) {
  const data = await api('/v1/queues');
  const rows = (data.queues || []).map((q) => el('tr', { 'data-queue': q.name },
    el('td', {}, link('/ui/dead/' + encodeURIComponent(q.name), q.name)),
    el('td', {}, String(q.dead))));
  fill(ctx.main, el('h1', {}, 'Dead letters'),
    el('p', { class: 'muted' }, 'Jobs that failed for good (out of attempts, or a permanent error), per queue.'),
    rows.length ? table(['queue', 'dead jobs'], rows) : el('p', { class: 'empty' }, 'No queues yet.'));
}

export async function deadPage(ctx, queue) {
  if (!queue) return deadIndex(ctx);
  const { main, query } = ctx;
  const offset = Math.max(0, parseInt(query.get('offset') || '0', 10) || 0);
  const base = '/v1/queues/' + encodeURIComponent(queue) + '/dead';
  const status = el('p', { class: 'muted', id: 'dead-status' });
  const body = el('tbody', {});
  const pager = el('div', { class: 'pager' });
  const all = el('input', { type: 'checkbox', 'aria-label': 'select all', onchange: () => {
    for (const c of body.querySelectorAll('input[type=checkbox]')) c.checked = all.checked;
  } });

  async function refresh() {
    const data = await api(`${base}?offset=${offset}&limit=${PAGE}`);
    fill(status, `${data.total} dead job${data.total === 1 ? '' : 's'} in ${queue}.`);
    fill(body, (data.jobs || []).length ? data.jobs.map((j) => el('tr', { 'data-job': j.id },
      el('td', {}, el('input', { type: 'checkbox', value: j.id, 'aria-label': 'select ' + j.id })),
      el('td', {}, jobLink(j.id)),
      el('td', {}, j.type),
      el('td', { class: 'error' }, j.error ? `${j.error.code}: ${j.error.message}` : ''),
      el('td', {}, `${j.attempts}/${j.max_attempts}`),
      el('td', {}, time(j.finished_at))))
      : el('tr', {}, el('td', { colspan: 6, class: 'empty' }, 'The dead-letter set is empty.')));
    all.checked = false;
    fill(pager,
      offset > 0 ? link(`/ui/dead/${encodeURIComponent(queue)}?offset=${Math.max(0, offset - PAGE)}`, '« Newer') : null,
      offset + PAGE < data.total ? link(`/ui/dead/${encodeURIComponent(queue)}?offset=${offset + PAGE}`, 'Older »') : null);
  }

  function selected() {
    return [...body.querySelectorAll('input[type=checkbox]:checked')].map((c) => c.value);
  }

  async function act(action, ids) {
    const verb = action === 'retry' ? 'retried' : 'purged';
    try {
      let done = 0;
      let res;
      // {"all":true} handles up to 10,000 jobs a call: repeat while some remain and
      // each call still does something.
      do {
        res = await api(`${base}/${action}`, { method: 'POST', body: ids ? { ids } : { all: true } });
        done += res[verb];
      } while (!ids && res.remaining > 0 && res[verb] > 0);
      const skipped = res.not_found.length + res.not_failed.length;
      ctx.notice(`${done} job${done === 1 ? '' : 's'} ${verb}` + (skipped ? `, ${skipped} no longer dead` : '') + '.');
    } catch (e) {
      ctx.notice(`Cannot ${action}: ${e.message}`, true);
    }
    await refresh().catch(() => {});
  }

  function needSome(fn) {
    return () => {
      const ids = selected();
      if (!ids.length) {
        ctx.notice('Tick the jobs first.', true);
        return Promise.resolve();
      }
      return fn(ids);
    };
  }

  await refresh();
  const t = table([all, 'id', 'type', 'error', 'attempts', 'failed at'], []);
  t.replaceChild(body, t.querySelector('tbody'));
  t.id = 'dead';
  fill(main, el('h1', {}, 'Dead letters of ', link('/ui/queues/' + encodeURIComponent(queue), queue)),
    status,
    el('div', { class: 'actions' },
      el('button', { type: 'button', 'data-action': 'retry-selected', onclick: needSome((ids) => act('retry', ids)) }, 'Retry selected'),
      confirmButton('Purge selected', needSome((ids) => act('purge', ids)), 'danger'),
      confirmButton('Retry all', () => act('retry', null)),
      confirmButton('Purge all', () => act('purge', null), 'danger')),
    t, pager);
  const soon = throttle(() => { if (ctx.alive()) refresh().catch(() => {}); }, 1000);
  ctx.live('/v1/events?queue=' + encodeURIComponent(queue), (ev) => {
    if (!ev || ev.state === 'failed' || ev.state === 'queued') soon();
  });
}
