import { createHmac, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request a receiver got. */
export interface Received {
  path: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** The body as JSON (null when it is not JSON). */
  json: any;
}

/** What the receiver does with a request: answer a status, or never answer (the caller ends it). */
export type Answer = { status: number; location?: string } | 'hang';

/** A real HTTP server on 127.0.0.1 that records every request and answers as told. */
export interface HookReceiver {
  url: string;
  port: number;
  received: Received[];
  /** Decides the answer to the n-th request (0-based); 200 when unset. */
  answer: (n: number, req: Received) => Answer;
  /** Resolves when the receiver has `count` requests. */
  waitFor(count: number, timeoutMs?: number): Promise<Received[]>;
  close(): Promise<void>;
}

export async function startHookReceiver(): Promise<HookReceiver> {
  const received: Received[] = [];
  const waiters: Array<() => void> = [];
  const hanging = new Set<http.ServerResponse>();
  const receiver: HookReceiver = {
    url: '',
    port: 0,
    received,
    answer: () => ({ status: 200 }),
    waitFor(count, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`the receiver got ${received.length} requests, not ${count}, within ${timeoutMs} ms`)), timeoutMs);
        const check = () => {
          if (received.length < count) return false;
          clearTimeout(timer);
          resolve(received.slice());
          return true;
        };
        // Each request wakes every waiter once: one still short of its count waits for the next.
        const wait = () => {
          if (!check()) waiters.push(wait);
        };
        wait();
      });
    },
    async close() {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      let json: unknown = null;
      try {
        json = JSON.parse(body.toString('utf8'));
      } catch {
        // Not JSON: kept as bytes.
      }
      const r: Received = { path: req.url ?? '', headers: req.headers, body, json };
      const answer = receiver.answer(received.length, r);
      received.push(r);
      for (const w of waiters.splice(0)) w();
      if (answer === 'hang') {
        hanging.add(res);
        return;
      }
      res.writeHead(answer.status, answer.location ? { location: answer.location } : {});
      res.end(answer.status >= 400 ? `answer ${answer.status}` : 'ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  receiver.port = (server.address() as AddressInfo).port;
  receiver.url = `http://127.0.0.1:${receiver.port}`;
  return receiver;
}

/** True when the request's X-Kiln-Signature-256 is the HMAC-SHA256 of its raw body keyed by `secret`. */
export function signedWith(r: Received, secret: string): boolean {
  const header = r.headers['x-kiln-signature-256'];
  if (typeof header !== 'string' || !header.startsWith('sha256=')) return false;
  const expected = createHmac('sha256', secret).update(r.body).digest();
  const given = Buffer.from(header.slice('sha256='.length), 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}
