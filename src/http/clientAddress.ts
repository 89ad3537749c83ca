import { BlockList, isIPv4, isIPv6 } from 'node:net';

/**
 * Which peers are reverse proxies of this installation (KILN_TRUSTED_PROXIES): their
 * `X-Forwarded-For` is believed, nobody else's. Empty: every peer is the client itself.
 */
export class TrustedProxies {
  private readonly list = new BlockList();
  readonly empty: boolean;

  constructor(cidrs: readonly string[]) {
    this.empty = cidrs.length === 0;
    for (const cidr of cidrs) {
      const [address = '', prefix] = cidr.split('/');
      const family = isIPv6(address) ? 'ipv6' : 'ipv4';
      this.list.addSubnet(address, prefix === undefined ? (family === 'ipv6' ? 128 : 32) : Number(prefix), family);
    }
  }

  /** Whether `address` is one of the proxies (an IPv4-mapped IPv6 address counts as its IPv4). */
  has(address: string): boolean {
    const bare = unmapped(address.split('%')[0]!);
    if (isIPv4(bare)) return this.list.check(bare, 'ipv4');
    return isIPv6(bare) && this.list.check(bare, 'ipv6');
  }

  /**
   * The client's address: the peer's, unless the peer is a trusted proxy; then the right-most
   * address of `X-Forwarded-For` that is not a trusted proxy. Each proxy appends the peer it saw,
   * so everything right of that entry was written by a trusted hop, and everything left of it
   * may be the client's invention (that part is never read).
   */
  clientOf(peer: string | undefined, forwardedFor: string | string[] | undefined): string | undefined {
    if (this.empty || peer === undefined || !this.has(peer)) return peer;
    const header = Array.isArray(forwardedFor) ? forwardedFor.join(',') : (forwardedFor ?? '');
    const hops = header
      .split(',')
      .map((h) => h.trim())
      .filter(Boolean);
    let client = peer;
    for (let i = hops.length - 1; i >= 0; i--) {
      client = hops[i]!;
      if (!this.has(client)) return client;
    }
    // Every hop is a proxy of ours: the left-most is as close to the client as anyone knows.
    return client;
  }
}

function unmapped(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m === null ? address : m[1]!;
}

/**
 * The bucket key of a caller without a valid token, by client address, the same over HTTP and
 * the socket. An IPv4 address is one caller (also written IPv4-mapped, `::ffff:a.b.c.d`); an
 * IPv6 caller is its /64, the smallest block a site is given: one host can rotate through the
 * 2^64 addresses of its own /64 at will, and would otherwise get a fresh bucket with each.
 */
export function addressKey(address: string | undefined): string {
  if (address === undefined || address === '') return 'ip:unknown';
  const bare = address.split('%')[0]!;
  if (isIPv4(bare)) return `ip:${bare}`;
  if (!isIPv6(bare)) return `ip:${bare.slice(0, 64)}`;
  const groups = ipv6Groups(bare);
  if (groups === null) return `ip:${bare}`;
  // ::ffff:0:0/96 holds IPv4 addresses, however written (::ffff:7f00:1 is 127.0.0.1).
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `ip:${groups[6]! >> 8}.${groups[6]! & 255}.${groups[7]! >> 8}.${groups[7]! & 255}`;
  }
  return `ip:${groups
    .slice(0, 4)
    .map((g) => g.toString(16))
    .join(':')}::/64`;
}

/** The eight 16-bit groups of a valid IPv6 address (`::` expanded, a dotted IPv4 tail split). */
function ipv6Groups(address: string): number[] | null {
  let text = address.toLowerCase();
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted !== null) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const part = (s: string | undefined) => (s === undefined || s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  const left = part(head);
  const right = part(tail);
  const groups = tail === undefined ? left : [...left, ...Array<number>(8 - left.length - right.length).fill(0), ...right];
  return groups.length === 8 && groups.every((g) => Number.isInteger(g) && g >= 0 && g <= 0xffff) ? groups : null;
}
