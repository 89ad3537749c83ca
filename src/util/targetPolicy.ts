import ipaddr from 'ipaddr.js';

/**
 * Which notification targets an operator lets Kiln reach beyond the public internet
 * (KILN_WEBHOOK_ALLOW; docs/design.md#notifications): CIDR blocks (a bare address is one host) and
 * exact host names. Plain data, so it crosses into the compile threads as it is.
 */
export interface TargetPolicy {
  /** Normalised `address/prefix` blocks. */
  cidrs: readonly string[];
  /** Lower-case host names allowed whatever they resolve to. */
  hosts: readonly string[];
}

/** No exception: only public unicast addresses. */
export const PUBLIC_ONLY: TargetPolicy = { cidrs: [], hosts: [] };

const HOST_NAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** Parses KILN_WEBHOOK_ALLOW's items (already split); throws an Error naming the bad item. */
export function parseTargetPolicy(items: readonly string[]): TargetPolicy {
  const cidrs: string[] = [];
  const hosts: string[] = [];
  for (const raw of items) {
    const item = raw.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1');
    if (item.includes('/')) {
      try {
        const [address, prefix] = ipaddr.parseCIDR(item);
        cidrs.push(`${address.toString()}/${prefix}`);
      } catch {
        throw new Error(`"${raw}" is not a CIDR block such as 127.0.0.1/32 or fd00::/8`);
      }
    } else if (ipaddr.isValid(item)) {
      const address = ipaddr.parse(item);
      cidrs.push(`${address.toString()}/${address.kind() === 'ipv4' ? 32 : 128}`);
    } else if (HOST_NAME.test(item)) {
      hosts.push(item);
    } else {
      throw new Error(`"${raw}" is neither an address, a CIDR block nor a host name`);
    }
  }
  return { cidrs, hosts };
}

/** An IPv4-mapped IPv6 address as the IPv4 address it is; other addresses as they are. */
function canonical(address: string): ipaddr.IPv4 | ipaddr.IPv6 {
  const parsed = ipaddr.parse(address);
  return parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress() ? (parsed as ipaddr.IPv6).toIPv4Address() : parsed;
}

/** True for an IP address literal (with or without IPv6 brackets). */
export function isAddressLiteral(host: string): boolean {
  return ipaddr.isValid(host.replace(/^\[(.*)\]$/, '$1'));
}

/**
 * Null when Kiln may connect to `address` for a target named `host`, otherwise why not:
 * loopback, private, link-local, unique-local, multicast, unspecified and reserved addresses
 * (anything but public unicast) are refused unless the address is in one of the policy's blocks
 * or the host is one of its names.
 */
export function addressProblem(host: string, address: string, policy: TargetPolicy): string | null {
  if (policy.hosts.includes(host.toLowerCase().replace(/\.$/, ''))) return null;
  let parsed: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    parsed = canonical(address.replace(/^\[(.*)\]$/, '$1'));
  } catch {
    return `"${address}" is not an IP address`;
  }
  const range = parsed.range();
  if (range === 'unicast') return null;
  for (const block of policy.cidrs) {
    const [base, prefix] = ipaddr.parseCIDR(block);
    if (base.kind() === parsed.kind() && parsed.match(base, prefix)) return null;
  }
  return `${parsed.toString()} is a ${range} address; Kiln reaches only public addresses unless KILN_WEBHOOK_ALLOW allows it`;
}

/**
 * What the job file can know without resolving: a literal address or `localhost` that the policy
 * refuses (null when the host is a name that only resolving will judge, or is allowed).
 */
export function literalTargetProblem(host: string, policy: TargetPolicy): string | null {
  const bare = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (isAddressLiteral(bare)) return addressProblem(bare, bare, policy);
  if (bare === 'localhost' || bare.endsWith('.localhost')) return addressProblem(bare, '127.0.0.1', policy);
  return null;
}
