// qchart.js - a queue's throughput and failure rate over the last 30 minutes, drawn with
// Chart.js (Debian's libjs-chart.js, embedded in spool-api) from
// GET /v1/queues/{name}/history: the API samples the queue counters every few seconds.

import { api } from './api.js';
import { el } from './dom.js';

// A chart in a new element; update() refetches, stop() frees it.
export function historyChart(queue) {
  const canvas = el('canvas', { 'aria-label': 'throughput of ' + queue, role: 'img' });
  const box = el('div', { class: 'chart' }, canvas);
  const empty = el('p', { class: 'muted empty' }, 'The chart fills in as spool-api samples the queue.');
  const node = el('div', {}, box, empty);
  let chart = null;

  function draw(h) {
    const perMin = 60000 / (h.interval_ms || 5000);
    const labels = [];
    const ok = [];
    const bad = [];
    const rate = [];
    for (const s of h.samples || []) {
      const d = new Date(s.at);
      labels.push(d.toLocaleTimeString());
      ok.push(+(s.succeeded * perMin).toFixed(1));
      bad.push(+(s.failed * perMin).toFixed(1));
      const ended = s.succeeded + s.failed;
      rate.push(ended ? +((100 * s.failed) / ended).toFixed(1) : 0);
    }
    empty.hidden = labels.length > 1;
    if (!window.Chart) {
      empty.textContent = 'Chart.js did not load.';
      empty.hidden = false;
      return;
    }
    const data = {
      labels,
      datasets: [
        { label: 'succeeded / min', data: ok, borderColor: '#1f7a3d', backgroundColor: '#1f7a3d',
          yAxisID: 'y', pointRadius: 0, tension: 0.2 },
        { label: 'failed / min', data: bad, borderColor: '#b42318', backgroundColor: '#b42318',
          yAxisID: 'y', pointRadius: 0, tension: 0.2 },
        { label: 'failure rate %', data: rate, borderColor: '#9a6700', backgroundColor: '#9a6700',
          yAxisID: 'y1', pointRadius: 0, borderDash: [4, 3], tension: 0.2 },
      ],
    };
    if (chart) {
      chart.data = data;
      chart.update('none');
      return;
    }
    chart = new window.Chart(canvas, {
      type: 'line',
      data,
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: 'index', intersect: false },
        scales: {
          x: { ticks: { maxTicksLimit: 6 } },
          y: { beginAtZero: true, title: { display: true, text: 'jobs / min' } },
          y1: { beginAtZero: true, max: 100, position: 'right', grid: { drawOnChartArea: false },
            title: { display: true, text: 'failed %' } },
        },
        plugins: { legend: { labels: { boxWidth: 12 } } },
      },
    });
  }

  return {
    node,
    async update() {
      try {
        draw(await api('/v1/queues/' + encodeURIComponent(queue) + '/history'));
      } catch (e) {
        if (e.status === 401) throw e;
        empty.textContent = 'No history: ' + e.message;
        empty.hidden = false;
      }
    },
    stop() {
      if (chart) chart.destroy();
      chart = null;
    },
  };
}
