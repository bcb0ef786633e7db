// app.js - the dashboard's shell: one HTML page for every /ui address, a router that
// draws the page the address names (links inside the dashboard change the address
// without a reload, so each page can be shared), the token prompt, and the live-update
// indicator.

import { api, setToken, token, whenUnauthorized } from './api.js';
import { el, fill } from './dom.js';
import { LiveStream } from './live.js';
import { overviewPage } from './overview.js';
import { jobsPage } from './jobs.js';
import { jobPage } from './job.js';
import { workersPage } from './workers.js';
import { deadPage } from './dead.js';

const main = document.getElementById('main');
const liveBadge = document.getElementById('live');
const tokenPanel = document.getElementById('token');
const notice = document.getElementById('notice');
let current = null; // the page drawn now: {stop()}
let stream = null;

// What each state of the stream shows in the header.
const LIVE_TEXT = {
  on: ['live', 'on'],
  connecting: ['connecting…', 'off'],
  ended: ['job ended', 'off'],
  unavailable: ['live updates unavailable', 'down'],
  unauthorized: ['live updates need a token', 'down'],
  none: ['', 'off'],
};

function setLive(status) {
  const [text, cls] = LIVE_TEXT[status] || LIVE_TEXT.none;
  liveBadge.textContent = text;
  liveBadge.className = 'live ' + cls;
  liveBadge.dataset.status = status;
  liveBadge.hidden = status === 'none';
}

export function showNotice(text, isError) {
  notice.textContent = text;
  notice.className = 'notice' + (isError ? ' error' : '');
  notice.hidden = !text;
}

// The page's context: where it draws, how it follows the event stream, how it reports.
let generation = 0; // which page is drawn: a page's late callbacks check it

function context(params) {
  const gen = generation;
  return {
    alive: () => gen === generation,
    main,
    params,
    query: new URLSearchParams(location.search),
    navigate,
    notice: showNotice,
    // Follow path (an SSE route) and call fn(event) for each job event; one stream per page.
    live(path, fn) {
      if (gen !== generation) return;
      if (stream) stream.stop();
      stream = new LiveStream(path, (data, type) => {
        if (type === 'gap') fn(null, 'gap');
        else if (data && data.job_id) fn(data, type);
      }, setLive).start();
    },
  };
}

const ROUTES = [
  [/^\/ui\/?$/, 'overview', (c) => overviewPage(c, null)],
  [/^\/ui\/queues\/([A-Za-z0-9_.-]{1,64})\/?$/, 'overview', (c, m) => overviewPage(c, m[1])],
  [/^\/ui\/jobs\/?$/, 'jobs', (c) => jobsPage(c)],
  [/^\/ui\/jobs\/([A-Za-z0-9_-]{1,64})\/?$/, 'jobs', (c, m) => jobPage(c, m[1])],
  [/^\/ui\/workers\/?$/, 'workers', (c) => workersPage(c)],
  [/^\/ui\/dead\/?$/, 'dead', (c) => deadPage(c, null)],
  [/^\/ui\/dead\/([A-Za-z0-9_.-]{1,64})\/?$/, 'dead', (c, m) => deadPage(c, m[1])],
];

function stopPage() {
  generation++;
  if (stream) stream.stop();
  stream = null;
  if (current && current.stop) current.stop();
  current = null;
}

async function route() {
  stopPage();
  showNotice('');
  setLive('none');
  const path = location.pathname;
  for (const a of document.querySelectorAll('#nav a')) a.classList.remove('current');
  for (const [re, nav, draw] of ROUTES) {
    const m = re.exec(path);
    if (!m) continue;
    const navLink = document.querySelector(`#nav a[data-nav="${nav}"]`);
    if (navLink) navLink.classList.add('current');
    document.title = (m[1] ? m[1] + ' · ' : '') + (navLink ? navLink.textContent : '') + ' · spool';
    fill(main, el('p', { class: 'muted' }, 'Loading…'));
    const ctx = context(m);
    try {
      const page = (await draw(ctx, m)) || null;
      if (ctx.alive()) current = page;
      else if (page && page.stop) page.stop();
    } catch (e) {
      if ((e && e.status === 401) || !ctx.alive()) return; // the token prompt is up, or gone
      fill(main, el('h1', {}, 'Cannot show this page'),
        el('p', { class: 'error', id: 'page-error' }, e.message || String(e)));
    }
    return;
  }
  fill(main, el('h1', {}, 'No such page'), el('p', {}, el('a', { href: '/ui' }, 'Overview')));
}

export function navigate(path) {
  if (path !== location.pathname + location.search) history.pushState(null, '', path);
  route();
}

// Links inside the dashboard change the address without a reload.
document.addEventListener('click', (e) => {
  const a = e.target.closest && e.target.closest('a[href]');
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || !url.pathname.startsWith('/ui') || a.target) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener('popstate', route);

// ---- the token ----------------------------------------------------------------------

function askToken(message) {
  stopPage();
  setLive('none');
  fill(main); // no data stays on screen without a valid token
  showNotice('');
  tokenPanel.hidden = false;
  document.getElementById('token-error').textContent = message || '';
  document.getElementById('token-input').focus();
}

whenUnauthorized(() => {
  setToken('');
  document.getElementById('signout').hidden = true;
  askToken(tokenPanel.hidden ? '' : 'That token was refused.');
});

document.getElementById('token-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const input = document.getElementById('token-input');
  setToken(input.value.trim());
  input.value = '';
  try {
    await api('/v1/queues');
  } catch (err) {
    if (err.status === 401) {
      askToken('That token was refused.');
      return;
    }
  }
  tokenPanel.hidden = true;
  document.getElementById('signout').hidden = !token();
  route();
});

document.getElementById('signout').addEventListener('click', () => {
  setToken('');
  location.reload();
});

document.getElementById('signout').hidden = !token();
route();
