// Per-tenant usage: events and webhooks per UTC day, drawn as SVG bars.

import { api, query } from './api.js';
import { $, el } from './dom.js';

const SVG = 'http://www.w3.org/2000/svg';

export async function loadUsage(tenantId) {
  let days;
  try {
    days = (await api(`/api/tenants/${tenantId}/activity${query({ days: 14 })}`)).days;
  } catch (e) {
    for (const id of ['chart-events', 'chart-webhooks']) {
      $(id).replaceChildren(el('p', { class: 'muted' }, `Unavailable: ${e.message}`));
    }
    return;
  }
  bars($('chart-events'), days, 'events');
  bars($('chart-webhooks'), days, 'webhooks');
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  node.append(...children);
  return node;
}

function bars(box, days, field) {
  const W = 420; const H = 150; const pad = { l: 34, r: 6, t: 10, b: 22 };
  const max = Math.max(1, ...days.map((d) => d[field]));
  const step = (W - pad.l - pad.r) / days.length;
  const y = (v) => pad.t + (H - pad.t - pad.b) * (1 - v / max);
  const chart = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', class: 'bars',
    'aria-label': `${field} per day, last ${days.length} days, at most ${max}` });
  for (const v of [0, max]) {
    chart.append(svg('line', { x1: pad.l, x2: W - pad.r, y1: y(v), y2: y(v), class: 'grid' }));
    chart.append(svg('text', { x: pad.l - 4, y: y(v) + 4, 'text-anchor': 'end', class: 'axis' }, String(v)));
  }
  days.forEach((d, i) => {
    const x = pad.l + i * step + step * 0.15;
    const h = Math.max(d[field] > 0 ? 1 : 0, H - pad.b - y(d[field]));
    const bar = svg('rect', { x, y: H - pad.b - h, width: step * 0.7, height: h, rx: 2, class: `bar ${field}` },
      svg('title', {}, `${d.day}: ${d[field]} ${field}`));
    chart.append(bar);
    if (i % 2 === days.length % 2 || days.length <= 7) {
      chart.append(svg('text', { x: x + step * 0.35, y: H - 6, 'text-anchor': 'middle', class: 'axis' }, d.day.slice(5)));
    }
  });
  const total = days.reduce((n, d) => n + d[field], 0);
  box.replaceChildren(chart, el('p', { class: 'muted small total' }, `${total} in ${days.length} days`));
}
