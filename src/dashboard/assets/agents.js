// Online agents, live: one server-sent event stream per chosen tenant; the node sends
// the whole list at once and again whenever it changes (on any node of a cluster).

import { stream, query } from './api.js';
import { $, el, show, ago, when, shortId } from './dom.js';

let current = null;

export function watchAgents(tenantId) {
  stopAgents();
  const ctl = new AbortController();
  const state = { agents: [], ctl };
  current = state;
  const tick = setInterval(() => render(state.agents), 5000);
  ctl.signal.addEventListener('abort', () => clearInterval(tick));
  render([]);
  run(tenantId, state);
}

export function stopAgents() {
  if (current) current.ctl.abort();
  current = null;
}

async function run(tenantId, state) {
  const { signal } = state.ctl;
  while (!signal.aborted) {
    live('connecting…', 'connecting');
    try {
      await stream(`/api/presence/stream${query({ tenant: tenantId })}`, {
        signal,
        onOpen: () => live('live', 'on'),
        onEvent: (name, data) => {
          if (name === 'presence') {
            state.agents = JSON.parse(data).agents;
            render(state.agents);
            live('live', 'on');
          } else if (name === 'unavailable') {
            live('node busy, retrying…', 'off');
          }
        },
      });
    } catch (e) {
      if (signal.aborted) return;
      if (e.status === 401) return;
    }
    if (signal.aborted) return;
    live('reconnecting…', 'off');
    await new Promise((r) => setTimeout(r, 2000));
  }
}

function live(text, mode) {
  const node = $('live-state');
  node.textContent = text;
  node.dataset.mode = mode;
}

function render(agents) {
  const body = $('agents-body');
  const now = Date.now();
  body.replaceChildren(...agents.map((a) => el('tr', { 'data-agent-id': a.agent_id },
    el('td', { 'data-label': 'Agent' },
      el('strong', {}, a.name || shortId(a.agent_id)),
      el('span', { class: 'muted small block' }, (a.capabilities || []).join(', '))),
    el('td', { 'data-label': 'Status' },
      el('span', { class: `badge status-${a.status}` }, a.status),
      a.detail ? el('span', { class: 'muted small block' }, a.detail) : null),
    el('td', { 'data-label': 'Node' }, el('code', {}, a.node_id)),
    el('td', { 'data-label': 'Connected since', title: a.connected_at }, when(a.connected_at)),
    el('td', { 'data-label': 'Last seen', title: a.last_seen }, ago(a.last_seen, now)),
    el('td', { 'data-label': 'Inbox lag', class: `num${a.lag > 0 ? ' lagging' : ''}`,
      title: `committed ${a.committed_seq}, acked ${a.acked_seq}` }, a.lag),
  )));
  $('agents-count').textContent = agents.length;
  show($('agents-empty'), agents.length === 0);
  show($('agents-table'), agents.length > 0);
}
