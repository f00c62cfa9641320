// The queue: counts and staleness (refreshed), dead letters with a confirmed replay,
// job search, and one job's error history.

import { api, query } from './api.js';
import { $, el, show, when, duration, shortId } from './dom.js';

let tenant = null;
let statsTimer = null;
let lastDone = null;
let jobsCursor = null;

export function watchQueue(tenantId) {
  tenant = tenantId;
  lastDone = null;
  clearInterval(statsTimer);
  refreshStats();
  statsTimer = setInterval(refreshStats, 5000);
  refreshDead();
  searchJobs(false);
}

export function stopQueue() {
  clearInterval(statsTimer);
  statsTimer = null;
}

export function initJobs() {
  $('jobs-form').addEventListener('submit', (e) => { e.preventDefault(); searchJobs(false); });
  $('jobs-more').addEventListener('click', () => searchJobs(true));
  $('dead-refresh').addEventListener('click', refreshDead);
}

async function refreshStats() {
  try {
    const s = await api(`/api/queue/stats${query({ tenant })}`);
    const c = s.counts || {};
    $('stat-queued').textContent = c.queued ?? 0;
    $('stat-running').textContent = c.running ?? 0;
    $('stat-dead').textContent = c.dead ?? 0;
    $('stat-oldest').textContent = s.oldest_queued_age_s > 0 ? duration(s.oldest_queued_age_s) : 'none';
    const done = (c.done ?? 0) + (c.dead ?? 0);
    const now = Date.now();
    if (lastDone) {
      const perMin = Math.max(0, done - lastDone.n) / ((now - lastDone.at) / 60000);
      $('stat-throughput').replaceChildren(perMin.toFixed(perMin < 10 ? 1 : 0), el('small', {}, ' jobs/min'));
    } else {
      $('stat-throughput').textContent = 'measuring…';
    }
    lastDone = { n: done, at: now };
  } catch (e) {
    if (e.name !== 'AbortError') $('stat-oldest').textContent = 'unavailable';
  }
}

async function refreshDead() {
  let page;
  try {
    page = await api(`/api/jobs${query({ status: 'dead', tenant, limit: 50 })}`);
  } catch (e) {
    notice(`Dead letters could not be read: ${e.message}`, true);
    return;
  }
  $('dead-body').replaceChildren(...page.jobs.map((j) => el('tr', { 'data-job-id': j.id },
    el('td', { 'data-label': 'Job' }, el('a', { href: '#', onclick: (e) => { e.preventDefault(); showJob(j.id); } }, shortId(j.id))),
    el('td', { 'data-label': 'Kind' }, j.kind),
    el('td', { 'data-label': 'Source' }, j.source),
    el('td', { 'data-label': 'Reason' }, el('span', { class: 'badge status-dead' }, j.reason_code || '–')),
    el('td', { 'data-label': 'Last error', class: 'error-text' }, j.last_error || ''),
    el('td', {}, el('button', { type: 'button', class: 'replay', onclick: () => replay(j) }, 'Replay')),
  )));
  show($('dead-empty'), page.jobs.length === 0);
  show($('dead-table'), page.jobs.length > 0);
}

async function replay(job) {
  const ok = await confirmAction(
    'Replay this dead letter?',
    `Job ${shortId(job.id)} (${job.kind}) goes back to the queue and runs again now.`,
  );
  if (!ok) return;
  try {
    const r = await api(`/api/jobs/${job.id}/replay`, { method: 'POST' });
    notice(`Replayed job ${shortId(job.id)} (${r.replayed} job back in the queue).`, false);
  } catch (e) {
    notice(`Replay failed: ${e.message}`, true);
  }
  await refreshDead();
  refreshStats();
}

function notice(text, bad) {
  const node = $('dead-message');
  node.textContent = text;
  node.classList.toggle('bad', bad);
  show(node, true);
}

export function confirmAction(title, text) {
  const dialog = $('confirm-dialog');
  $('confirm-title').textContent = title;
  $('confirm-text').textContent = text;
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
    dialog.returnValue = '';
    dialog.showModal();
  });
}

async function searchJobs(more) {
  if (!more) jobsCursor = null;
  const params = {
    status: $('jobs-status').value,
    kind: $('jobs-kind').value.trim(),
    source: $('jobs-source').value.trim(),
    tenant, cursor: jobsCursor, limit: 25,
  };
  let page;
  try {
    page = await api(`/api/jobs${query(params)}`);
  } catch (e) {
    $('jobs-empty').textContent = `Search failed: ${e.message}`;
    show($('jobs-empty'), true);
    return;
  }
  const rows = page.jobs.map((j) => el('tr', { 'data-job-id': j.id, class: 'clickable', onclick: () => showJob(j.id) },
    el('td', { 'data-label': 'Job' }, el('code', {}, shortId(j.id))),
    el('td', { 'data-label': 'Status' }, el('span', { class: `badge status-${j.status}` }, j.status)),
    el('td', { 'data-label': 'Kind' }, j.kind),
    el('td', { 'data-label': 'Source' }, j.source),
    el('td', { 'data-label': 'Attempts', class: 'num' }, `${j.attempts}/${j.max_attempts}`),
    el('td', { 'data-label': 'Created' }, when(j.created_at)),
  ));
  if (more) $('jobs-body').append(...rows); else $('jobs-body').replaceChildren(...rows);
  jobsCursor = page.next_cursor;
  show($('jobs-more'), Boolean(page.next_cursor));
  const none = $('jobs-body').children.length === 0;
  $('jobs-empty').textContent = 'No job matches.';
  show($('jobs-empty'), none);
  show($('jobs-table'), !none);
}

async function showJob(id) {
  const box = $('job-detail');
  let job;
  try {
    job = await api(`/api/jobs/${id}`);
  } catch (e) {
    box.replaceChildren(el('p', { class: 'error' }, `Job ${shortId(id)}: ${e.message}`));
    show(box, true);
    return;
  }
  const attempts = job.attempts_log.length
    ? el('ol', { class: 'attempts' }, ...job.attempts_log.map((a) => el('li', {},
      el('span', { class: 'muted small' }, `attempt ${a.attempt} · ${when(a.at)}`),
      el('pre', {}, a.error))))
    : el('p', { class: 'muted' }, 'No failed attempt.');
  box.replaceChildren(
    el('div', { class: 'card-head' },
      el('h3', {}, `Job ${shortId(job.id)} · ${job.kind}`),
      el('button', { type: 'button', class: 'ghost', onclick: () => show(box, false) }, 'Close')),
    el('dl', {},
      el('dt', {}, 'Status'), el('dd', {}, `${job.status}${job.reason_code ? ` (${job.reason_code})` : ''}`),
      el('dt', {}, 'Source'), el('dd', {}, job.source),
      el('dt', {}, 'Attempts'), el('dd', {}, `${job.attempts} of ${job.max_attempts}`),
      el('dt', {}, 'Created'), el('dd', {}, when(job.created_at)),
      el('dt', {}, 'Trace'), el('dd', {}, el('code', {}, job.trace_id || '–'))),
    el('h4', {}, 'Error history'), attempts,
  );
  show(box, true);
  box.scrollIntoView({ block: 'nearest' });
}
