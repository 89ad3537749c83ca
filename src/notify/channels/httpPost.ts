import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import type { TargetGuard } from '../targetGuard.js';
import type { SendResult } from './types.js';

/** Longest wait for an answer, connection included. */
export const SEND_TIMEOUT_MS = 10_000;
/** Most bytes of an answer read (for the error text); the rest is dropped. */
const MAX_ANSWER_BYTES = 4096;

/** Answers worth another try: timeouts, rate limits and server errors. */
function retryable(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/** A lookup that answers `address` whatever is asked: the connection goes where the guard checked. */
function pinned(address: string, family: 4 | 6): LookupFunction {
  return (_host, options, callback) => {
    if ((options as { all?: boolean }).all) (callback as (e: null, a: Array<{ address: string; family: number }>) => void)(null, [{ address, family }]);
    else callback(null, address, family);
  };
}

/**
 * POSTs `body` to `url` once (docs/design.md#notifications): the target through the guard, the
 * connection pinned to the checked address (the Host header and TLS name stay the URL's), no
 * redirect followed, at most SEND_TIMEOUT_MS, at most 4 KiB of the answer read. Network errors,
 * timeouts, 408, 429 and 5xx are temporary; a refused target, a redirect and other 4xx permanent.
 */
export async function postJson(url: URL, body: Buffer, headers: Record<string, string>, guard: TargetGuard, signal: AbortSignal): Promise<SendResult> {
  const target = await guard.check(url);
  if (!target.ok) return { ok: false, permanent: target.permanent, responseCode: null, error: target.error };
  const timeout = AbortSignal.any([signal, AbortSignal.timeout(SEND_TIMEOUT_MS)]);
  return new Promise<SendResult>((resolve) => {
    const client = url.protocol === 'https:' ? https : http;
    const req = client.request(
      url,
      {
        method: 'POST',
        headers: { ...headers, 'Content-Length': String(body.length) },
        lookup: pinned(target.address, target.family),
        agent: false,
        signal: timeout,
      },
      (res) => {
        const status = res.statusCode ?? 0;
        const chunks: Buffer[] = [];
        let size = 0;
        const done = () => {
          const text = Buffer.concat(chunks).subarray(0, MAX_ANSWER_BYTES).toString('utf8').trim();
          if (status >= 200 && status < 300) return resolve({ ok: true, permanent: false, responseCode: status, error: null });
          const why =
            status >= 300 && status < 400
              ? `HTTP ${status}: redirect to ${res.headers.location ?? '(no location)'} not followed`
              : `HTTP ${status}${text ? `: ${text}` : ''}`;
          resolve({ ok: false, permanent: !retryable(status), responseCode: status, error: why });
          res.destroy();
        };
        res.on('data', (chunk: Buffer) => {
          if (size >= MAX_ANSWER_BYTES) return;
          chunks.push(chunk);
          size += chunk.length;
          if (size >= MAX_ANSWER_BYTES) done();
        });
        res.on('end', done);
        res.on('error', done);
      },
    );
    req.on('error', (err: NodeJS.ErrnoException) => {
      const why = timeout.aborted && !signal.aborted ? `no answer within ${SEND_TIMEOUT_MS} ms` : `${err.code ?? err.name}: ${err.message}`;
      resolve({ ok: false, permanent: false, responseCode: null, error: why });
    });
    req.end(body);
  });
}
