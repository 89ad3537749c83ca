import { post, Tally } from './api.js';
import type { Attack } from './context.js';

/**
 * Attack 4 (issue 11, item 4; review M2): requests without a token from one address, as a
 * scanner or a misconfigured client behind the same proxy or NAT sends them. They are charged
 * to the address; what matters is whether an authenticated user at that address (B, here on
 * 127.0.0.1 too) can still follow a build (B opens its log subscription during the flood).
 */
export function tokenlessAttack(opts: { requests: number; concurrency: number }): Attack {
  return {
    label: 'tokenless flood',
    name: `${opts.requests.toLocaleString('en')} tokenless requests from one address (${opts.concurrency} at a time)`,
    async run(ctx, signal) {
      const tally = new Tally();
      let next = 0;
      const client = async () => {
        // One signal per client, not the window's for every request: fetch leaves a listener on
        // the signal it is given until the request is collected, thousands of them here.
        const own = new AbortController();
        const stop = () => own.abort();
        signal.addEventListener('abort', stop, { once: true });
        while (next < opts.requests && !signal.aborted) {
          next++;
          await tally.time(post(`${ctx.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}', signal: own.signal }));
        }
        signal.removeEventListener('abort', stop);
      };
      await Promise.all(Array.from({ length: opts.concurrency }, client));
      return { tally, notes: [] };
    },
  };
}
