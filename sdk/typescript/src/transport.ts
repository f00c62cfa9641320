// The WebSocket seam: `ws` on Node (it can send an Authorization header), the
// global `WebSocket` in browsers (the token goes in `?token=`, as the protocol allows).

/** The part of the WebSocket API the agent uses; `ws` and browsers both provide it. */
export interface SocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: any) => void) | null;
}

export type SocketFactory = (url: string, token: string) => Promise<SocketLike>;

export const PROTOCOL = "nexus.v1";
const OPEN = 1;

export function isOpen(socket: SocketLike | null): socket is SocketLike {
  return socket !== null && socket.readyState === OPEN;
}

const isNode =
  typeof process !== "undefined" && typeof process.versions?.node === "string";

/** Node: the `ws` package, with the token in an `Authorization` header. */
export const nodeSocketFactory: SocketFactory = async (url, token) => {
  const { default: WebSocket } = await import("ws");
  return new WebSocket(url, PROTOCOL, {
    headers: { authorization: `Bearer ${token}` },
  }) as unknown as SocketLike;
};

/** Browsers (and any runtime with a global `WebSocket`): the token in `?token=`. */
export const browserSocketFactory: SocketFactory = async (url, token) => {
  const withToken = new URL(url);
  withToken.searchParams.set("token", token);
  return new globalThis.WebSocket(withToken.toString(), PROTOCOL) as unknown as SocketLike;
};

/** `nodeSocketFactory` on Node, `browserSocketFactory` elsewhere. */
export const defaultSocketFactory: SocketFactory = (url, token) =>
  isNode ? nodeSocketFactory(url, token) : browserSocketFactory(url, token);
