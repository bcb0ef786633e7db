// dom.js - building the page without HTML strings: every value goes in as a text node
// or an attribute set through the DOM, so a job field such as a title holding
// "<script>" shows as text. No innerHTML anywhere in the dashboard.

// el('a', {href: '/ui', class: 'x', onclick: fn}, 'text', child...): an element.
export function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
    else if (k === 'value') e.value = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  append(e, children);
  return e;
}

export function append(parent, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    parent.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return parent;
}

// Replace everything in node with children.
export function fill(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

// A link inside the dashboard (the router takes the click, no reload).
export function link(path, ...children) {
  return el('a', { href: path, 'data-route': '' }, ...children);
}

export function jobLink(id) {
  return link('/ui/jobs/' + encodeURIComponent(id), el('span', { class: 'mono' }, id));
}

export function stateBadge(state) {
  return el('span', { class: 'state state-' + String(state).replace(/[^a-z]/g, '') }, state);
}

export function progressBar(p) {
  const n = Math.max(0, Math.min(100, Number(p) || 0));
  return el('span', {}, el('progress', { max: 100, value: n }), ' ', n + '%');
}

// "2026-12-07T17:39:24.000Z" as the viewer's local time; '' for null.
export function time(t) {
  if (!t) return '';
  const d = new Date(t);
  return isNaN(d) ? String(t) : d.toLocaleString();
}

export function ago(t) {
  if (!t) return '';
  const s = Math.round((Date.now() - new Date(t).getTime()) / 1000);
  if (!isFinite(s)) return String(t);
  if (s < 60) return Math.max(s, 0) + ' s ago';
  if (s < 3600) return Math.floor(s / 60) + ' min ago';
  return Math.floor(s / 3600) + ' h ago';
}

export function bytes(n) {
  if (n === null || n === undefined) return '';
  const u = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  let v = Number(n);
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return (i ? v.toFixed(1) : v) + ' ' + u[i];
}

// The title a person gave a job, if any (a PDF export's title).
export function jobTitle(job) {
  const p = job && job.params;
  return p && typeof p.title === 'string' ? p.title : '';
}

// Run fn at most once per ms (the last call wins, run at the end of the wait).
export function throttle(fn, ms) {
  let timer = null;
  let last = 0;
  return () => {
    if (timer) return;
    const wait = Math.max(0, last + ms - Date.now());
    timer = setTimeout(() => { timer = null; last = Date.now(); fn(); }, wait);
  };
}

export function table(headers, rows) {
  return el('table', {},
    el('thead', {}, el('tr', {}, headers.map((h) => el('th', {}, h)))),
    el('tbody', {}, rows));
}

// A button that asks again before doing something it cannot undo: the first click
// turns it into "Really ...?" for a few seconds, the second does it.
export function confirmButton(label, action, cls) {
  const b = el('button', { type: 'button', class: cls || '' }, label);
  let armed = null;
  b.addEventListener('click', async () => {
    if (!armed) {
      b.textContent = 'Really ' + label.toLowerCase() + '?';
      armed = setTimeout(() => { armed = null; b.textContent = label; }, 4000);
      return;
    }
    clearTimeout(armed);
    armed = null;
    b.textContent = label;
    b.disabled = true;
    try { await action(); } finally { b.disabled = false; }
  });
  return b;
}
