import type { Socket } from 'node:net';
import type WebSocket from 'ws';

/**
 * Drops a WebSocket that is gone: every `intervalMs` the server pings, and a socket that has
 * neither answered the previous ping nor taken any data since then is terminated.
 *
 * Why not graphql-ws's own keep-alive: it waits for the pong alone, and a pong queues behind
 * whatever the server sent before the ping. A follower that reads a big backlog slowly (still
 * reading, so still draining the socket) would be cut off as dead; counting the bytes it takes
 * as a sign of life keeps it, while a client that reads nothing at all is still dropped.
 */
export function keepSocketAlive(ws: WebSocket, raw: Socket, intervalMs: number): void {
  if (!(intervalMs > 0) || !Number.isFinite(intervalMs)) return;
  let answered = true;
  let written = raw.bytesWritten;
  ws.on('pong', () => (answered = true));
  const timer = setInterval(() => {
    const progressed = raw.bytesWritten > written;
    written = raw.bytesWritten;
    if (!answered && !progressed) {
      ws.terminate();
      return;
    }
    answered = false;
    if (ws.readyState === ws.OPEN) ws.ping();
    // The ping's own bytes are no sign of the client's life.
    written = raw.bytesWritten;
  }, intervalMs);
  timer.unref();
  ws.once('close', () => clearInterval(timer));
}
