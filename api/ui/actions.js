// actions.js - what a person can do to a job from any page: cancel it, retry it.

import { api } from './api.js';
import { el } from './dom.js';

const ENDED = new Set(['succeeded', 'failed', 'cancelled']);

// Buttons for job j; done(job) runs with the job as the API answered after the action.
export function jobActions(j, ctx, done) {
  const out = [];
  if (!ENDED.has(j.state)) {
    out.push(el('button', { type: 'button', class: 'danger', 'data-action': 'cancel', onclick: async (e) => {
      e.target.disabled = true;
      try {
        done(await api('/v1/jobs/' + encodeURIComponent(j.id), { method: 'DELETE' }));
      } catch (err) {
        ctx.notice('Cannot cancel: ' + err.message, true);
        e.target.disabled = false;
      }
    } }, 'Cancel'));
  }
  if (j.state === 'failed') {
    out.push(el('button', { type: 'button', 'data-action': 'retry', onclick: async (e) => {
      e.target.disabled = true;
      try {
        done(await api('/v1/jobs/' + encodeURIComponent(j.id) + '/retry', { method: 'POST' }));
      } catch (err) {
        ctx.notice('Cannot retry: ' + err.message, true);
        e.target.disabled = false;
      }
    } }, 'Retry'));
  }
  return out;
}
