import { lookup as dnsLookup } from 'node:dns/promises';
import { addressProblem, isAddressLiteral, type TargetPolicy } from '../util/targetPolicy.js';

/** Where an HTTP target may be reached, checked: the address to connect to and nothing else. */
export type GuardedTarget = { ok: true; address: string; family: 4 | 6 } | { ok: false; error: string; permanent: boolean };

/** Resolves notification targets and refuses those the operator did not allow (docs/design.md#notifications). */
export interface TargetGuard {
  check(url: URL): Promise<GuardedTarget>;
}

type Lookup = (host: string) => Promise<Array<{ address: string; family: number }>>;

/**
 * A guard for `policy` (KILN_WEBHOOK_ALLOW). Every address a name resolves to must pass (a name
 * with one public and one private address is refused), and the caller connects to the address
 * returned, not to the name again: a second resolution could answer differently (DNS rebinding).
 */
export function createTargetGuard(policy: TargetPolicy, lookup: Lookup = (host) => dnsLookup(host, { all: true, verbatim: true })): TargetGuard {
  return {
    async check(url) {
      if (url.protocol !== 'http:' && url.protocol !== 'https:') return { ok: false, permanent: true, error: `refused target: ${url.protocol} is not http: or https:` };
      const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
      let addresses: Array<{ address: string; family: number }>;
      if (isAddressLiteral(host)) addresses = [{ address: host, family: host.includes(':') ? 6 : 4 }];
      else {
        try {
          addresses = await lookup(host);
        } catch (err) {
          // Resolution may work next time; a refused address will not.
          return { ok: false, permanent: false, error: `cannot resolve ${host}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
        }
      }
      if (addresses.length === 0) return { ok: false, permanent: false, error: `cannot resolve ${host}: no address` };
      for (const a of addresses) {
        const problem = addressProblem(host, a.address, policy);
        if (problem !== null) return { ok: false, permanent: true, error: `refused target ${host}: ${problem}` };
      }
      const first = addresses[0]!;
      return { ok: true, address: first.address, family: first.family === 6 ? 6 : 4 };
    },
  };
}
