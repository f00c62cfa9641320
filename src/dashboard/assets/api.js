// The operator API as the dashboard uses it. The key lives in this tab's
// sessionStorage and travels only in the Authorization header, never in a URL.

const KEY = 'nexus.operatorKey';

export const session = {
  get key() { return sessionStorage.getItem(KEY); },
  set(key) { sessionStorage.setItem(KEY, key); },
  clear() { sessionStorage.removeItem(KEY); },
};

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// Called when the node refuses the key (revoked mid-session): the app signs out.
let onUnauthorized = () => {};
export function whenUnauthorized(f) { onUnauthorized = f; }

export async function api(path, { method = 'GET', body, key = session.key, signal } = {}) {
  const headers = { Authorization: `Bearer ${key}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let resp;
  try {
    resp = await fetch(path, {
      method, headers, signal, cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', 'The node cannot be reached.');
  }
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!resp.ok) {
    const err = data && data.error ? data.error : {};
    if (resp.status === 401 && key === session.key) onUnauthorized();
    throw new ApiError(resp.status, err.code || 'http', err.message || `HTTP ${resp.status}`);
  }
  return data;
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, v);
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

// Reads a server-sent event stream with fetch (EventSource cannot send the key in a
// header). Calls onEvent(name, data) per event; resolves when the stream ends.
export async function stream(path, { signal, onOpen, onEvent }) {
  const resp = await fetch(path, {
    headers: { Authorization: `Bearer ${session.key}`, Accept: 'text/event-stream' },
    signal, cache: 'no-store',
  });
  if (!resp.ok) {
    if (resp.status === 401) onUnauthorized();
    throw new ApiError(resp.status, 'http', `HTTP ${resp.status}`);
  }
  onOpen();
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, '\n');
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = 'message';
      const data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const val = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') name = val;
        else if (field === 'data') data.push(val);
      }
      if (data.length) onEvent(name, data.join('\n'));
    }
  }
}
