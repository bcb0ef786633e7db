// job.js - /ui/jobs/{id}: one job (parameters, attempts and the errors and times of
// those that failed, timings, progress, metadata), its events as they come, its
// outputs (the video played, the poster shown, the PDF opened: fetched with the token
// into blob: URLs when one is in use), cancel and retry.

import { api, blobUrl, token } from './api.js';
import { jobActions } from './actions.js';
import { bytes, el, fill, jobTitle, progressBar, stateBadge, table, time } from './dom.js';

const ENDED = new Set(['succeeded', 'failed', 'cancelled']);

function took(a, b) {
  const ms = new Date(b) - new Date(a);
  if (!isFinite(ms) || ms < 0) return '';
  return ms < 1000 ? ms + ' ms' : (ms / 1000).toFixed(1) + ' s';
}

function pretty(v) {
  return el('pre', {}, v === null || v === undefined ? 'none' : JSON.stringify(v, null, 2));
}

export async function jobPage(ctx, id) {
  const { main } = ctx;
  const urls = []; // blob: URLs to revoke when the page goes
  let job;
  try {
    job = await api('/v1/jobs/' + encodeURIComponent(id));
  } catch (e) {
    if (e.status === 404) {
      fill(main, el('h1', {}, 'No such job'), el('p', { class: 'muted' }, id,
        ': it never existed, or it ended longer ago than the retention period.'));
      return null;
    }
    throw e;
  }

  const head = el('h1', {});
  const fields = el('dl', { class: 'fields', id: 'job-fields' });
  const attempts = el('section', { class: 'panel', id: 'attempts' });
  const actions = el('div', { class: 'actions', id: 'job-actions' });
  const outputs = el('section', { class: 'panel', id: 'outputs' });
  const events = el('ol', { class: 'events', id: 'job-events' });
  const details = el('section', { class: 'panel' });
  let shownOutputs = '';

  function field(name, ...value) {
    return [el('dt', {}, name), el('dd', { 'data-field': name }, ...value)];
  }

  function draw(j) {
    job = j;
    const title = jobTitle(j);
    fill(head, title ? title : j.type, ' ', stateBadge(j.state));
    fill(fields,
      field('id', el('span', { class: 'mono' }, j.id)),
      field('type', j.type),
      field('queue', j.queue),
      field('state', stateBadge(j.state), j.cancel_requested && !ENDED.has(j.state) ? ' (cancel requested)' : ''),
      field('progress', progressBar(j.progress)),
      field('attempts', `${j.attempts} of ${j.max_attempts}`),
      field('priority', j.priority || 'normal'),
      field('created', time(j.created_at)),
      field('started', time(j.started_at) || '—'),
      field('finished', time(j.finished_at) || '—'),
      j.next_attempt_at ? field('next attempt', time(j.next_attempt_at)) : null,
      field('error', j.error
        ? el('span', { class: 'error' }, j.error.code, ': ', j.error.message,
          j.error.retryable ? ' (retryable)' : ' (permanent)')
        : 'none'));
    fill(actions, jobActions(j, ctx, draw));
    drawAttempts(j);
    fill(details, el('h2', {}, 'Parameters'), pretty(j.params),
      el('h2', {}, 'Input'), pretty(j.input),
      el('h2', {}, 'Metadata'), pretty(j.metadata));
    const key = JSON.stringify(j.outputs || []);
    if (key !== shownOutputs) {
      shownOutputs = key;
      drawOutputs(j);
    }
  }

  // The attempts that did not succeed (the record keeps the last ten), oldest first.
  function drawAttempts(j) {
    const log = Array.isArray(j.attempt_log) ? j.attempt_log : [];
    fill(attempts, el('h2', {}, 'Attempts that did not succeed'),
      log.length
        ? table(['attempt', 'started', 'ended', 'took', 'became', 'error'], log.map((a) => el('tr', { 'data-attempt': a.attempt },
          el('td', {}, String(a.attempt)),
          el('td', {}, time(a.started_at)),
          el('td', {}, time(a.ended_at)),
          el('td', {}, took(a.started_at, a.ended_at)),
          el('td', {}, stateBadge(a.outcome)),
          el('td', { class: 'error' }, a.error ? `${a.error.code}: ${a.error.message}` : ''))))
        : el('p', { class: 'empty' }, 'None.'));
  }

  // Outputs: with a token they are fetched with it into blob: URLs; without one the
  // browser streams them from their address (seeking a video uses Range).
  async function source(o) {
    if (!token()) return o.url;
    const u = await blobUrl(o.url);
    urls.push(u);
    return u;
  }

  function drawOutputs(j) {
    const list = j.outputs || [];
    fill(outputs, el('h2', {}, 'Outputs'),
      list.length ? null : el('p', { class: 'empty' }, ENDED.has(j.state) ? 'No outputs.' : 'Outputs appear when the job succeeds.'));
    for (const o of list) {
      const type = String(o.content_type || '');
      const box = el('div', { class: 'output', 'data-output': o.name });
      const show = el('div', {});
      const download = el('button', { type: 'button' }, 'Download');
      download.addEventListener('click', async () => {
        try {
          const a = el('a', { href: await source(o), download: o.name });
          document.body.append(a);
          a.click();
          a.remove();
        } catch (e) { ctx.notice(e.message, true); }
      });
      outputHeader(box, o, type, show, download);
      outputs.append(box);
      if (type.startsWith('video/')) {
        const v = el('video', { controls: true, preload: 'metadata', 'data-kind': 'video' });
        show.append(v);
        source(o).then((u) => { v.src = u; }).catch((e) => show.append(el('p', { class: 'error' }, e.message)));
      } else if (type.startsWith('image/')) {
        const img = el('img', { alt: o.name, 'data-kind': 'image' });
        show.append(img);
        source(o).then((u) => { img.src = u; }).catch((e) => show.append(el('p', { class: 'error' }, e.message)));
      } else if (type === 'application/pdf') {
        // Always through a blob: URL, which the browser shows: the output's own address
        // answers Content-Disposition: attachment, a download.
        show.append(el('button', { type: 'button', 'data-kind': 'pdf', onclick: async () => {
          const tab = window.open('', '_blank'); // now, while the click still allows it
          try {
            const u = await blobUrl(o.url);
            urls.push(u);
            if (tab) {
              tab.opener = null;
              tab.location.replace(u);
            } else { // a blocked pop-up: a link to click instead
              show.append(' ', el('a', { href: u, target: '_blank', rel: 'noopener' }, 'the PDF'));
            }
          } catch (e) {
            if (tab) tab.close();
            ctx.notice(e.message, true);
          }
        } }, 'Open the PDF'));
      }
    }
  }

  function outputHeader(box, o, type, show, download) {
    box.append(el('div', {}, el('b', {}, o.name), ' ', el('span', { class: 'muted' }, type, ', ', bytes(o.bytes)), ' '),
      download, show);
  }

  draw(job);
  fill(main, head, actions, el('section', { class: 'panel' }, fields), attempts, outputs,
    el('section', { class: 'panel' }, el('h2', {}, 'Events'), events), details);

  let refetching = null;
  async function refetch() {
    if (refetching) return;
    refetching = api('/v1/jobs/' + encodeURIComponent(id)).then((j) => ctx.alive() && draw(j))
      .catch(() => {}).finally(() => { refetching = null; });
  }
  ctx.live('/v1/jobs/' + encodeURIComponent(id) + '/events', (ev, type) => {
    if (type === 'gap' || !ev) {
      refetch();
      return;
    }
    events.append(el('li', {}, time(ev.at), ' ', ev.state, ' ', String(ev.progress), '%'));
    if (ev.state !== job.state || ENDED.has(ev.state)) {
      refetch(); // the record has more than the event (error, outputs, timings)
    } else {
      draw(Object.assign({}, job, { progress: ev.progress }));
    }
  });
  return { stop() { urls.forEach((u) => URL.revokeObjectURL(u)); } };
}
