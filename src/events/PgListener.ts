import pg from 'pg';

/** Options of {@link PgListener}. */
export interface PgListenerOptions {
  /** Connection settings; the listener opens its own dedicated connection with them. */
  connection: pg.ClientConfig;
  channels: readonly string[];
  onNotification(channel: string, payload: string): void;
  /**
   * Called after the connection was lost and LISTEN is in force again: notifications sent in
   * between are gone, so whoever relies on them must re-read what they watch.
   */
  onReconnect(): void;
  log: (message: string) => void;
  /** Longest wait between two reconnection attempts; default 5 s. */
  maxBackoffMs?: number;
}

/**
 * One dedicated Postgres connection that LISTENs on a few channels for the whole process
 * (LISTEN belongs to a session, so it cannot use a pooled connection). Reconnects with backoff
 * when the connection drops and reports it, since NOTIFY keeps nothing for absent listeners.
 */
export class PgListener {
  private client: pg.Client | null = null;
  private stopped = false;
  private retry: NodeJS.Timeout | null = null;
  private backoffMs = 100;
  private since: number | null = null;

  constructor(private readonly opts: PgListenerOptions) {}

  /**
   * When (epoch ms) the LISTENs now in force began; null while disconnected. Every notification
   * committed after that time has been or will be delivered.
   */
  get connectedSince(): number | null {
    return this.since;
  }

  /** Connects and LISTENs; rejects when the first connection fails. */
  async start(): Promise<void> {
    await this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retry !== null) clearTimeout(this.retry);
    const client = this.client;
    this.client = null;
    await client?.end().catch(() => {});
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({ ...this.opts.connection, keepAlive: true, application_name: 'kiln-events' });
    client.on('notification', (msg) => {
      if (msg.payload !== undefined) this.opts.onNotification(msg.channel, msg.payload);
    });
    // 'error' and 'end' both mean the session (and its LISTENs) is gone.
    const lost = (why: string) => {
      if (this.client !== client) return;
      this.client = null;
      this.since = null;
      client.end().catch(() => {});
      if (!this.stopped) {
        this.opts.log(`event listener: connection lost (${why}); reconnecting`);
        this.scheduleReconnect();
      }
    };
    client.on('error', (err) => lost(err.message));
    client.on('end', () => lost('ended'));
    const startedAt = Date.now();
    try {
      await client.connect();
      for (const channel of this.opts.channels) await client.query(`listen ${pg.escapeIdentifier(channel)}`);
    } catch (err) {
      await client.end().catch(() => {});
      throw err;
    }
    if (this.stopped) {
      await client.end().catch(() => {});
      return;
    }
    this.client = client;
    this.since = startedAt;
    this.backoffMs = 100;
  }

  private scheduleReconnect(): void {
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, this.opts.maxBackoffMs ?? 5000);
    this.retry = setTimeout(() => {
      this.retry = null;
      this.connect().then(
        () => {
          if (!this.stopped) this.opts.onReconnect();
        },
        (err: Error) => {
          if (this.stopped) return;
          this.opts.log(`event listener: reconnect failed (${err.message})`);
          this.scheduleReconnect();
        },
      );
    }, delay);
    this.retry.unref();
  }
}
