// Per-tenant usage, last 14 UTC days: events and webhooks per day, tokens and cost per
// day (SVG bars), and tokens and cost per agent and per model (tables).

import { api, query } from './api.js';
import { $, el, show } from './dom.js';

const SVG = 'http://www.w3.org/2000/svg';
const DAYS = 14;
const usd = (v) => `$${v.toFixed(v >= 100 ? 0 : 2)}`;
const tokensOf = (r) => r.input_tokens + r.output_tokens + r.cache_read_tokens + r.cache_write_tokens;

export async function loadUsage(tenantId) {
  let days;
  try {
    days = (await api(`/api/tenants/${tenantId}/activity${query({ days: DAYS })}`)).days;
  } catch (e) {
    for (const id of ['chart-events', 'chart-webhooks', 'chart-tokens', 'chart-cost']) unavailable(id, e);
    return;
  }
  bars($('chart-events'), days, 'events', String);
  bars($('chart-webhooks'), days, 'webhooks', String);
  await loadTokens(tenantId, days);
}

function unavailable(id, e) {
  $(id).replaceChildren(el('p', { class: 'muted' }, `Unavailable: ${e.message}`));
}

// The same days as the activity charts, from GET /api/usage by day, agent and model.
async function loadTokens(tenantId, days) {
  const range = { tenant: tenantId, from: `${days[0].day}T00:00:00Z` };
  let byDay; let byAgent; let byModel;
  try {
    [byDay, byAgent, byModel] = await Promise.all(['day', 'agent', 'model'].map(
      (group_by) => api(`/api/usage${query({ ...range, group_by })}`)));
  } catch (e) {
    for (const id of ['chart-tokens', 'chart-cost']) unavailable(id, e);
    return;
  }
  const found = new Map(byDay.rows.map((r) => [r.key, r]));
  const perDay = days.map(({ day }) => {
    const r = found.get(day);
    return { day, tokens: r ? tokensOf(r) : 0, cost: r ? r.cost_usd : 0 };
  });
  bars($('chart-tokens'), perDay, 'tokens', compact);
  bars($('chart-cost'), perDay, 'cost', usd);
  table($('usage-agents-body'), byAgent.rows, (r) => r.name || r.key, 'Agent');
  table($('usage-models-body'), byModel.rows, (r) => r.key, 'Model');
  const unpriced = byModel.unpriced_models;
  $('usage-unpriced').textContent = unpriced.length
    ? `No price for ${unpriced.join(', ')}: counted at $0 (add them to the node's --prices file).` : '';
  show($('usage-unpriced'), unpriced.length > 0);
}

function table(body, rows, label, what) {
  if (rows.length === 0) {
    body.replaceChildren(el('tr', {}, el('td', { colspan: 3, class: 'muted' }, 'No sessions in these days.')));
    return;
  }
  body.replaceChildren(...rows.map((r) => el('tr', {},
    el('td', { 'data-label': what }, label(r)),
    el('td', { class: 'num', 'data-label': 'Tokens' }, tokensOf(r).toLocaleString()),
    el('td', { class: 'num cost', 'data-label': 'Cost (USD)' }, usd(r.cost_usd)))));
}

// 1234 → "1.2k", 5600000 → "5.6M".
function compact(v) {
  if (v >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
  if (v >= 1e3) return `${(v / 1e3).toFixed(1)}k`;
  return String(v);
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  node.append(...children);
  return node;
}

function bars(box, days, field, format) {
  const W = 420; const H = 150; const pad = { l: 40, r: 6, t: 10, b: 22 };
  const max = Math.max(field === 'cost' ? 0.01 : 1, ...days.map((d) => d[field]));
  const step = (W - pad.l - pad.r) / days.length;
  const y = (v) => pad.t + (H - pad.t - pad.b) * (1 - v / max);
  const chart = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', class: 'bars',
    'aria-label': `${field} per day, last ${days.length} days, at most ${format(max)}` });
  for (const v of [0, max]) {
    chart.append(svg('line', { x1: pad.l, x2: W - pad.r, y1: y(v), y2: y(v), class: 'grid' }));
    chart.append(svg('text', { x: pad.l - 4, y: y(v) + 4, 'text-anchor': 'end', class: 'axis' }, format(v)));
  }
  days.forEach((d, i) => {
    const x = pad.l + i * step + step * 0.15;
    const h = Math.max(d[field] > 0 ? 1 : 0, H - pad.b - y(d[field]));
    const bar = svg('rect', { x, y: H - pad.b - h, width: step * 0.7, height: h, rx: 2, class: `bar ${field}` },
      svg('title', {}, `${d.day}: ${format(d[field])} ${field}`));
    chart.append(bar);
    if (i % 2 === days.length % 2 || days.length <= 7) {
      chart.append(svg('text', { x: x + step * 0.35, y: H - 6, 'text-anchor': 'middle', class: 'axis' }, d.day.slice(5)));
    }
  });
  const total = days.reduce((n, d) => n + d[field], 0);
  box.replaceChildren(chart, el('p', { class: 'muted small total' }, `${format(total)} in ${days.length} days`));
}
