// live.js - the event stream (GET /v1/events, /v1/jobs/{id}/events) read with fetch()
// and a ReadableStream, since EventSource cannot send the Authorization header. Parses
// text/event-stream, resumes with Last-Event-ID after a drop, and says when the server
// has no stream at all (404: "live updates unavailable") rather than retrying.

import { authHeaders } from './api.js';

// Feed text to parse Server-Sent Events: onEvent({type, id, data}) per event.
export class SseParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buf = '';
    this.reset();
  }

  reset() {
    this.type = '';
    this.data = [];
    this.id = null;
  }

  push(text) {
    this.buf += text;
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.buf);
      // A lone \r at the end may be the first half of \r\n: wait for more.
      if (!m || (m[0] === '\r' && m.index === this.buf.length - 1)) break;
      const line = this.buf.slice(0, m.index);
      this.buf = this.buf.slice(m.index + m[0].length);
      this.line(line);
    }
  }

  line(line) {
    if (line === '') {
      if (this.data.length || this.type) {
        this.onEvent({ type: this.type || 'message', id: this.id, data: this.data.join('\n') });
      }
      this.reset();
      return;
    }
    if (line.startsWith(':')) return; // a comment: the heartbeat
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.type = value;
    else if (field === 'id' && !value.includes('\0')) this.id = value;
  }
}

// A stream that stays open until stop(): onEvent(data, type) for each event whose data
// is JSON (the job event {"id","job_id","state","progress","queue","type","at"}),
// onStatus('on' | 'connecting' | 'ended' | 'unavailable' | 'unauthorized') as it goes
// ('ended': a job's stream answered 204, the job ended before the last event seen).
export class LiveStream {
  constructor(path, onEvent, onStatus) {
    this.path = path;
    this.onEvent = onEvent;
    this.onStatus = onStatus || (() => {});
    this.lastId = null;
    this.ctrl = null;
    this.stopped = false;
    this.delay = 500;
  }

  start() {
    this.run();
    return this;
  }

  stop() {
    this.stopped = true;
    if (this.ctrl) this.ctrl.abort();
  }

  async run() {
    while (!this.stopped) {
      this.onStatus('connecting');
      const headers = authHeaders({ Accept: 'text/event-stream' });
      if (this.lastId) headers['Last-Event-ID'] = this.lastId;
      this.ctrl = new AbortController();
      let r = null;
      try {
        r = await fetch(this.path, { headers, credentials: 'omit', cache: 'no-store',
          signal: this.ctrl.signal });
      } catch (e) {
        r = null;
      }
      if (this.stopped) return;
      if (r && (r.status === 404 || r.status === 405 || r.status === 501)) {
        this.onStatus('unavailable');
        return;
      }
      if (r && r.status === 204) {
        this.onStatus('ended');
        return;
      }
      if (r && r.status === 401) {
        this.onStatus('unauthorized');
        return;
      }
      const type = r ? r.headers.get('Content-Type') || '' : '';
      if (r && r.ok && r.body && type.startsWith('text/event-stream')) {
        this.delay = 500;
        this.onStatus('on');
        await this.read(r.body);
      } else if (r && r.ok) {
        this.onStatus('unavailable'); // something answered, but not a stream
        return;
      }
      if (this.stopped) return;
      this.onStatus('connecting');
      await new Promise((ok) => setTimeout(ok, this.delay));
      this.delay = Math.min(this.delay * 2, 15000);
    }
  }

  async read(body) {
    const reader = body.getReader();
    const dec = new TextDecoder();
    const parser = new SseParser((ev) => {
      if (ev.id !== null && ev.id !== '') this.lastId = ev.id;
      let data = null;
      try { data = ev.data ? JSON.parse(ev.data) : null; } catch { data = null; }
      try { this.onEvent(data, ev.type); } catch (e) { console.warn('live event:', e); }
    });
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.push(dec.decode(value, { stream: true }));
      }
    } catch (e) {
      // aborted or cut: run() reconnects unless stopped
    }
  }
}
