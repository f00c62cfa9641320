// The audit log of operator actions (GET /api/audit), newest first.

import { api, query } from './api.js';
import { $, el, show, when } from './dom.js';

let tenant = null;

export function initAudit() {
  $('audit-refresh').addEventListener('click', () => loadAudit(tenant));
}

export async function loadAudit(tenantId) {
  tenant = tenantId;
  let page;
  try {
    page = await api(`/api/audit${query({ tenant, limit: 50 })}`);
  } catch (e) {
    $('audit-body').replaceChildren();
    $('audit-empty').textContent = e.status === 404
      ? 'This node has no audit log.'
      : `The audit log could not be read: ${e.message}`;
    show($('audit-empty'), true);
    show($('audit-table'), false);
    return;
  }
  const entries = page.entries || [];
  $('audit-body').replaceChildren(...entries.map((a) => el('tr', { 'data-audit-id': a.id, 'data-action': a.action },
    el('td', { 'data-label': 'When' }, when(a.at)),
    el('td', { 'data-label': 'Who' }, a.actor || a.actor_key_id || '–'),
    el('td', { 'data-label': 'Action' }, el('code', {}, a.action)),
    el('td', { 'data-label': 'Target' }, a.target || '–'),
  )));
  $('audit-empty').textContent = 'No operator action recorded yet.';
  show($('audit-empty'), entries.length === 0);
  show($('audit-table'), entries.length > 0);
}
