import type { BystanderResult } from './common.js';

/**
 * The bystander: someone looking at their build history while the scheduler is under load. A
 * GraphQL query for the caller's latest executions, sent over HTTP to Kiln's own API every
 * `everyMs` on a fixed timetable (never waiting for the previous answer), as the user who owns
 * the benchmark's jobs.
 *
 * Latency is measured from each query's intended send time, not from the moment it went out: the
 * client shares its event loop with Kiln's API and worker (as `kiln start` runs both in one
 * process), so a loop blocked by Kiln delays the send, and an outside client's request would have
 * waited in the socket for that same loop. Measuring from the send would hide exactly that wait.
 */

export const BYSTANDER_QUERY = 'query BenchHistory { executions(first: 20) { edges { node { id number status startedAt finishedAt } } } }';
export const BYSTANDER_EVERY_MS = 100;
/** More unanswered queries than this and the next ones are skipped (counted), not piled up. */
const MAX_IN_FLIGHT = 50;
/** A query unanswered for this long is an error. */
const REQUEST_TIMEOUT_MS = 10_000;

interface Answer {
  data?: { executions?: { edges?: unknown[] } };
  errors?: Array<{ message: string }>;
}

export class Bystander {
  private readonly samples: number[] = [];
  private sent = 0;
  private errors = 0;
  private firstError: string | undefined;
  private skipped = 0;
  private lastRows = 0;
  private sendLagMaxMs = 0;
  private readonly inFlight = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | null = null;
  private next: number;
  private stopped = false;

  private constructor(
    private readonly url: string,
    private readonly token: string,
    private readonly everyMs: number,
  ) {
    this.next = performance.now();
  }

  /** Starts querying `${apiUrl}/graphql` at once, then every `everyMs`. */
  static start(apiUrl: string, token: string, everyMs = BYSTANDER_EVERY_MS): Bystander {
    const b = new Bystander(`${apiUrl}/graphql`, token, everyMs);
    b.arm();
    return b;
  }

  /**
   * A few queries whose answers are not kept: the first answers of a fresh process pay one-time
   * costs (connections, compiled code) that a bystander of a long-running server never sees.
   */
  static async warmUp(apiUrl: string, token: string, queries = 3): Promise<void> {
    const b = new Bystander(`${apiUrl}/graphql`, token, 0);
    for (let i = 0; i < queries; i++) await b.query();
  }

  private arm(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => this.tick(), Math.max(0, this.next - performance.now()));
  }

  /** Sends every query whose intended time has come (several after a blocked loop), then re-arms. */
  private tick(): void {
    const now = performance.now();
    while (this.next <= now && !this.stopped) {
      if (this.inFlight.size >= MAX_IN_FLIGHT) this.skipped++;
      else this.send(this.next, now);
      this.next += this.everyMs;
    }
    this.arm();
  }

  private send(intended: number, now: number): void {
    this.sent++;
    this.sendLagMaxMs = Math.max(this.sendLagMaxMs, now - intended);
    const p = this.query()
      .then((rows) => {
        this.samples.push(performance.now() - intended);
        this.lastRows = rows;
      })
      .catch((err: Error) => this.fail(err.message))
      .finally(() => this.inFlight.delete(p));
    this.inFlight.add(p);
  }

  private async query(): Promise<number> {
    const res = await fetch(this.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${this.token}` },
      body: JSON.stringify({ query: BYSTANDER_QUERY }),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    const body = (await res.json()) as Answer;
    if (!res.ok || body.errors?.length) throw new Error(`HTTP ${res.status}: ${body.errors?.[0]?.message ?? 'no data'}`);
    const edges = body.data?.executions?.edges;
    if (!Array.isArray(edges)) throw new Error('answer without executions');
    return edges.length;
  }

  private fail(message: string): void {
    this.errors++;
    this.firstError ??= message;
  }

  /** Stops sending; waits for the queries still out (each bounded by its own time-out). */
  async stop(): Promise<BystanderResult> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await Promise.allSettled([...this.inFlight]);
    return {
      samples: [...this.samples],
      sent: this.sent,
      errors: this.errors,
      firstError: this.firstError,
      skipped: this.skipped,
      lastRows: this.lastRows,
      sendLagMaxMs: this.sendLagMaxMs,
    };
  }
}
