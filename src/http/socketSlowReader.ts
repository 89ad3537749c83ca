import type { Socket } from 'node:net';
import type WebSocket from 'ws';

/** Close code of a socket whose client stopped reading (RFC 6455 "Policy Violation"). */
export const NOT_READING = 1008;

/**
 * Guards the server against a client that does not read what it asked for (pongs, results):
 * while more than `maxBufferedBytes` wait unsent in the socket, nothing more is read from it
 * (its requests would only queue more answers), and a socket still over that after `stallMs` is
 * closed with NOT_READING, then dropped a second later (its client will not read the close frame
 * either). A reader that catches up is read from again.
 *
 * Live log streams stop themselves far below this (socketWrites.ts, SOCKET_LOW_WATER): a slow
 * follower never reaches it; what does is a client that keeps asking and never reads.
 */
export function closeSlowReaders(
  ws: WebSocket,
  raw: Socket,
  limits: Readonly<{ maxBufferedBytes: number; stallMs: number }>,
  log: (message: string) => void,
): { check(): void } {
  let stalled: NodeJS.Timeout | null = null;
  const clear = () => {
    if (stalled !== null) clearTimeout(stalled);
    stalled = null;
  };
  const check = () => {
    if (ws.readyState !== ws.OPEN) return;
    if (raw.writableLength <= limits.maxBufferedBytes) {
      if (stalled !== null) {
        clear();
        ws.resume();
      }
      return;
    }
    if (stalled !== null) return;
    ws.pause();
    stalled = setTimeout(() => {
      const unsent = raw.writableLength;
      if (unsent <= limits.maxBufferedBytes) return check();
      log(`closed a WebSocket with ${NOT_READING}: its client read nothing of ${unsent} unsent bytes for ${limits.stallMs} ms`);
      ws.close(NOT_READING, `not reading: over ${limits.maxBufferedBytes} bytes unsent for ${limits.stallMs} ms`);
      setTimeout(() => ws.terminate(), 1000).unref();
    }, limits.stallMs);
    stalled.unref();
  };
  raw.on('drain', check);
  ws.once('close', clear);
  return { check };
}
