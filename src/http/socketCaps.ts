/**
 * How many sockets each user holds open, and how many each address holds that have not yet
 * named a user (connection_init), in this process (docs/design.md#socket-limits).
 *
 * An address's count holds only sockets that have not authenticated: users sharing a NAT or a
 * proxy do not share a cap once they have said who they are, while a client without a token can
 * hold at most `maxPendingPerAddress` half-open sockets (each closed by graphql-ws within 3 s).
 * A limit of 0 is no cap.
 */
export class SocketCaps {
  private readonly pending = new Map<string, number>();
  private readonly open = new Map<string, number>();

  constructor(private readonly limits: Readonly<{ maxPerUser: number; maxPendingPerAddress: number }>) {}

  /** Counts a new socket from `address` unless that address is at its cap (then false). */
  admitPending(address: string): boolean {
    return admit(this.pending, address, this.limits.maxPendingPerAddress);
  }

  releasePending(address: string): void {
    release(this.pending, address);
  }

  /** Counts a socket of user `sub` unless the user is at their cap (then false). */
  admitUser(sub: string): boolean {
    return admit(this.open, sub, this.limits.maxPerUser);
  }

  releaseUser(sub: string): void {
    release(this.open, sub);
  }

  /** The message of a refusal at the per-address cap (HTTP 429 of the upgrade). */
  pendingMessage(): string {
    return `too many WebSocket connections from this address waiting for connection_init: at most ${this.limits.maxPendingPerAddress}`;
  }

  /** The close reason of a refusal at the per-user cap (at most 123 bytes). */
  userMessage(): string {
    return `too many sockets: at most ${this.limits.maxPerUser} per user`;
  }
}

function admit(counts: Map<string, number>, key: string, max: number): boolean {
  const n = counts.get(key) ?? 0;
  if (max > 0 && n >= max) return false;
  counts.set(key, n + 1);
  return true;
}

function release(counts: Map<string, number>, key: string): void {
  const n = (counts.get(key) ?? 0) - 1;
  if (n > 0) counts.set(key, n);
  else counts.delete(key);
}
