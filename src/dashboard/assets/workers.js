// Agent-host workers (GET /api/workers): what each reported last, and which went quiet.

import { api, query } from './api.js';
import { $, ago, el, show, when } from './dom.js';

let tenant = null;

export function initWorkers() {
  $('workers-refresh').addEventListener('click', () => loadWorkers(tenant));
}

const at = (iso) => (iso ? when(iso) : '–');

export async function loadWorkers(tenantId) {
  tenant = tenantId;
  let list;
  try {
    list = await api(`/api/workers${query({ tenant, limit: 200 })}`);
  } catch (e) {
    $('workers-body').replaceChildren();
    $('workers-empty').textContent = `Workers could not be read: ${e.message}`;
    show($('workers-empty'), true);
    show($('workers-table'), false);
    return;
  }
  const workers = list.workers || [];
  $('workers-body').replaceChildren(...workers.map((w) => el('tr', { 'data-worker': `${w.agent_id}/${w.host}` },
    el('td', { 'data-label': 'Host' }, w.host, ' ',
      w.stale ? el('span', { class: 'badge status-dead', title: `nothing for over ${3 * w.interval_s} s` }, 'stale') : null),
    el('td', { 'data-label': 'Agent' }, w.agent_name),
    el('td', { 'data-label': 'Last scan' }, at(w.last_scan_at)),
    el('td', { 'data-label': 'Last upload' }, at(w.last_upload_at)),
    el('td', { 'data-label': 'Queued', class: 'num' }, w.queued),
    el('td', { 'data-label': 'Failing', class: 'num', title: w.last_error || '' }, w.failing),
    el('td', { 'data-label': 'Parked', class: 'num' }, w.parked),
    el('td', { 'data-label': 'Last seen' }, ago(w.seen_at)),
  )));
  $('workers-count').textContent = String(workers.length);
  $('workers-empty').textContent = 'No worker has reported (nexus worker sends POST /api/workers/heartbeat).';
  show($('workers-empty'), workers.length === 0);
  show($('workers-table'), workers.length > 0);
}
