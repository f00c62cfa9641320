// The dashboard's entry point: sign in with an operator key, pick a tenant, and start
// every panel on it.

import { api, session, query, whenUnauthorized } from './api.js';
import { $, el, show } from './dom.js';
import { watchAgents, stopAgents } from './agents.js';
import { initJobs, watchQueue, stopQueue } from './jobs.js';
import { loadUsage } from './usage.js';
import { initAlerts, loadAlerts } from './alerts.js';
import { initWorkers, loadWorkers } from './workers.js';
import { initAudit, loadAudit } from './audit.js';

const TENANT = 'nexus.tenant';

async function tenants(key) {
  const all = [];
  let cursor = null;
  do {
    const page = await api(`/api/tenants${query({ cursor, limit: 200 })}`, { key });
    all.push(...page.tenants);
    cursor = page.next_cursor;
  } while (cursor && all.length < 2000);
  return all;
}

function signedOut(message) {
  stopAgents();
  stopQueue();
  session.clear();
  sessionStorage.removeItem(TENANT);
  show($('dashboard'), false);
  show($('session-tools'), false);
  show($('sign-in'), true);
  const err = $('sign-in-error');
  err.textContent = message || '';
  show(err, Boolean(message));
  $('key-input').value = '';
  $('key-input').focus();
}

async function signIn(key) {
  let list;
  try {
    list = await tenants(key);
  } catch (e) {
    if (e.status === 401) return 'That key was not accepted: it is unknown or has been revoked.';
    if (e.status === 403) return 'That key may not read this node (it needs the read scope).';
    return `Sign-in failed: ${e.message}`;
  }
  session.set(key);
  open(list);
  return null;
}

function open(list) {
  show($('sign-in'), false);
  show($('session-tools'), true);
  show($('dashboard'), true);
  const picker = $('tenant-picker');
  picker.replaceChildren(...list.map((t) => el('option', { value: t.id },
    t.status && t.status !== 'active' ? `${t.name} (${t.status})` : t.name)));
  if (list.length === 0) {
    banner('No tenant exists yet: create one with `nexus tenant create`.');
    return;
  }
  const kept = sessionStorage.getItem(TENANT);
  picker.value = list.some((t) => t.id === kept) ? kept : list[0].id;
  picker.disabled = list.length === 1;
  choose(picker.value);
}

function choose(tenantId) {
  sessionStorage.setItem(TENANT, tenantId);
  banner(null);
  watchAgents(tenantId);
  watchQueue(tenantId);
  loadUsage(tenantId);
  loadAudit(tenantId);
  loadAlerts(tenantId);
  loadWorkers(tenantId);
}

function banner(text) {
  $('banner').textContent = text || '';
  show($('banner'), Boolean(text));
}

async function start() {
  initJobs();
  initAudit();
  initAlerts();
  initWorkers();
  whenUnauthorized(() => signedOut('The node no longer accepts this key; sign in again.'));
  $('sign-in-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const key = $('key-input').value.trim();
    if (!key) return;
    $('sign-in-button').disabled = true;
    const error = await signIn(key);
    $('sign-in-button').disabled = false;
    if (error) {
      $('sign-in-error').textContent = error;
      show($('sign-in-error'), true);
    }
  });
  $('sign-out').addEventListener('click', () => signedOut(null));
  $('tenant-picker').addEventListener('change', (e) => choose(e.target.value));
  if (session.key) {
    const error = await signIn(session.key);
    if (error) signedOut(error);
  } else {
    signedOut(null);
  }
}

start();
