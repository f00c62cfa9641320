// Cost alerts (GET /api/alerts) and the periods they fired in (GET /api/alerts/firings).

import { api, query } from './api.js';
import { $, el, show, when } from './dom.js';

let tenant = null;

export function initAlerts() {
  $('alerts-refresh').addEventListener('click', () => loadAlerts(tenant));
}

const usd = (n) => `$${Number(n).toFixed(2)}`;

export async function loadAlerts(tenantId) {
  tenant = tenantId;
  let alerts;
  let firings;
  try {
    [alerts, firings] = await Promise.all([
      api(`/api/alerts${query({ tenant, limit: 100 })}`),
      api(`/api/alerts/firings${query({ tenant, limit: 20 })}`),
    ]);
  } catch (e) {
    $('alerts-body').replaceChildren();
    $('alerts-empty').textContent = `Cost alerts could not be read: ${e.message}`;
    show($('alerts-empty'), true);
    show($('alerts-table'), false);
    return;
  }
  const byId = new Map((alerts.alerts || []).map((a) => [a.id, a]));
  const fired = firings.firings || [];
  $('alerts-body').replaceChildren(...fired.map((f) => {
    const a = byId.get(f.alert_id);
    const scope = a && a.agent_id ? `agent ${a.agent_id.slice(0, 8)}…` : 'tenant';
    return el('tr', { 'data-alert-id': f.alert_id },
      el('td', { 'data-label': 'Fired' }, when(f.fired_at)),
      el('td', { 'data-label': 'Alert' }, a ? `${scope}, per ${a.period}, over ${usd(a.threshold_usd)}` : 'removed'),
      el('td', { 'data-label': 'Spend', class: 'num' }, usd(f.spend_usd)),
    );
  }));
  const n = (alerts.alerts || []).length;
  $('alerts-count').textContent = String(n);
  $('alerts-empty').textContent = n === 0
    ? 'No cost alert is set (nexus alert add, or POST /api/alerts).'
    : 'No alert has fired yet.';
  show($('alerts-empty'), fired.length === 0);
  show($('alerts-table'), fired.length > 0);
}
