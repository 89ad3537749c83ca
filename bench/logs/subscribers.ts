import WebSocket from 'ws';
import { lineLatencyMs, nowUs } from './generator.js';

/** Latencies in ms, kept compactly (a million samples are 8 MB). */
export class Latencies {
  private values = new Float64Array(1 << 16);
  count = 0;

  add(ms: number): void {
    if (this.count === this.values.length) {
      const bigger = new Float64Array(this.values.length * 2);
      bigger.set(this.values);
      this.values = bigger;
    }
    this.values[this.count++] = ms;
  }

  /** p50, p99 and max; NaN when empty. */
  summary(): { count: number; p50: number; p99: number; max: number } {
    const sorted = this.values.slice(0, this.count).sort();
    const at = (p: number) => (this.count === 0 ? NaN : sorted[Math.min(this.count, Math.max(1, Math.ceil((p / 100) * this.count))) - 1]!);
    return { count: this.count, p50: at(50), p99: at(99), max: at(100) };
  }
}

/** What one subscriber saw. */
export interface SubscriberResult {
  chunks: number;
  /** Every seq arrived exactly once and in order (1, 2, 3, ...). */
  inOrder: boolean;
  completed: boolean;
  /** Set when the server sent something other than this subscription's lines (an error). */
  error?: string;
}

const QUERY = 'subscription($id: ID!) { executionLogs(executionId: $id) { seq stream text } }';

/**
 * One graphql-transport-ws subscriber on its own socket, as a browser or a CLI would be, kept
 * lean so that a thousand of them fit beside the server: each message is parsed once, the
 * generator's stamp gives the line's latency.
 */
export function subscribe(baseUrl: string, token: string, executionId: string, latencies: Latencies): { ready: Promise<void>; done: Promise<SubscriberResult> } {
  const ws = new WebSocket(`${baseUrl.replace(/^http/, 'ws')}/graphql`, 'graphql-transport-ws');
  const result: SubscriberResult = { chunks: 0, inOrder: true, completed: false };
  let onReady!: () => void;
  let onFail!: (err: Error) => void;
  const ready = new Promise<void>((resolve, reject) => ((onReady = resolve), (onFail = reject)));
  const done = new Promise<SubscriberResult>((resolve) => {
    ws.on('open', () => ws.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } })));
    ws.on('message', (raw) => {
      const text = String(raw);
      // 'next' messages are most of the traffic: read seq and the generator's stamp without a
      // full JSON.parse, so that a thousand subscribers in one process keep up with the server.
      if (text.startsWith('{"id":"1","type":"next"')) {
        const seq = Number(text.slice(text.indexOf('"seq":') + 6, text.indexOf(',', text.indexOf('"seq":'))));
        result.chunks++;
        if (seq !== result.chunks) result.inOrder = false;
        if (text.includes('"stream":"STDOUT"')) {
          const at = text.indexOf('"text":"') + 8;
          const ms = lineLatencyMs(text.slice(at, text.indexOf('"', at)), nowUs());
          if (ms !== null) latencies.add(ms);
        }
        return;
      }
      const msg = JSON.parse(text) as { type: string };
      if (msg.type === 'connection_ack') {
        ws.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: QUERY, variables: { id: executionId } } }));
        onReady();
      } else if (msg.type === 'complete') {
        result.completed = true;
        ws.close();
      } else if (msg.type === 'ping') {
        ws.send(JSON.stringify({ type: 'pong' }));
      } else if (msg.type === 'next' || msg.type === 'error') {
        // A refusal (a limit, a lost authorisation) or a message of another shape: the
        // subscription has failed; say so in the result rather than crash the benchmark.
        result.error = `unexpected message: ${text.slice(0, 300)}`;
        ws.close();
      }
    });
    ws.on('error', (err) => onFail(err));
    ws.on('close', () => resolve(result));
  });
  return { ready, done };
}
