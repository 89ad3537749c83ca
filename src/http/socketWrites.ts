import type { Socket } from 'node:net';
import type WebSocket from 'ws';

type SendCallback = (err?: Error) => void;

/**
 * Bytes a socket may hold unsent while its sender is told at once that a frame went out. Beyond
 * it the sender waits until its frame has really been written. Small on purpose: the unsent
 * frames are strings on the heap, and a thousand slow subscribers hold a thousand times this.
 */
export const SOCKET_LOW_WATER = 16 * 1024;

/**
 * Makes `ws.send` cheap for a stream of small messages, keeping back-pressure:
 *
 * - Frames sent in one turn of the event loop leave in one `writev` (the TCP socket is corked
 *   until the loop's check phase) instead of one system call per frame, which was the largest
 *   single cost of a live log line.
 * - The send callback (which graphql-ws awaits before it pulls the next event) fires at once
 *   while the socket holds less than SOCKET_LOW_WATER unsent bytes; beyond that, only once the
 *   frame has been written to the kernel. A subscriber that stops reading therefore stops its
 *   own stream there: the server keeps its cursor, not its backlog.
 */
export function batchSocketWrites(ws: WebSocket, raw: Socket): void {
  const send = ws.send.bind(ws) as (data: unknown, options: object, cb?: SendCallback) => void;
  let corked = false;
  const uncork = () => {
    corked = false;
    raw.uncork();
  };
  ws.send = ((data: unknown, a?: object | SendCallback, b?: SendCallback) => {
    const cb = (typeof a === 'function' ? a : b) as SendCallback | undefined;
    const options = typeof a === 'object' && a !== null ? a : {};
    if (ws.readyState !== ws.OPEN) {
      send(data, options, cb);
      return;
    }
    if (!corked) {
      corked = true;
      raw.cork();
      setImmediate(uncork);
    }
    if (cb === undefined) {
      send(data, options);
    } else if (raw.writableLength < SOCKET_LOW_WATER) {
      send(data, options);
      process.nextTick(cb);
    } else {
      // A socket closed meanwhile fails its pending writes; graphql-ws ends the socket's
      // subscriptions on close anyway, so its senders just need waking.
      send(data, options, (err) => cb(ws.readyState === ws.OPEN ? err : undefined));
    }
  }) as WebSocket['send'];
}
