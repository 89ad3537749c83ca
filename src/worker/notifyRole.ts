import type pg from 'pg';
import type { NotifySettings } from '../config/notify.js';
import { PgListener } from '../events/PgListener.js';
import { SecretMasker } from '../logs/mask.js';
import { createChannels } from '../notify/channels/index.js';
import { NOTIFY_CHANNEL } from '../notify/queue.js';
import { NotifySender } from '../notify/sender.js';
import { createTargetGuard } from '../notify/targetGuard.js';
import type { SecretBox } from '../secrets/SecretBox.js';
import type { ArtifactStore } from '../storage/ArtifactStore.js';
import type { Log } from '../util/log.js';

/** What a worker's notification sender is configured with. */
export interface NotifyRoleOptions {
  settings: NotifySettings;
  /** KILN_PUBLIC_URL, or http://HOST:PORT: the base of execution links. */
  publicUrl: () => string;
}

/** The values of `owner`'s stored secrets (all of them, or those named). */
async function ownerSecrets(pool: pg.Pool, box: SecretBox, owner: string, name?: string): Promise<Map<string, string>> {
  const { rows } = await pool.query<{ name: string; value: string }>(
    `select name, value from secrets where owner = $1 and ($2::text is null or name = $2)`,
    [owner, name ?? null],
  );
  const values = new Map<string, string>();
  for (const r of rows) {
    try {
      values.set(r.name, box.open(owner, r.name, r.value));
    } catch {
      // Unreadable with this key: it cannot sign, and nothing could have leaked it.
    }
  }
  return values;
}

/**
 * Starts the notification sender of a worker role (docs/design.md#notifications), woken by
 * NOTIFY kiln_notify from the transactions that queue deliveries. Resolves once LISTEN is in force.
 */
export async function startNotifySender(o: {
  pool: pg.Pool;
  store: ArtifactStore;
  secretBox: SecretBox;
  workerId: string;
  notify: NotifyRoleOptions;
  log: Log;
}): Promise<{ stop(): Promise<void> }> {
  const guard = createTargetGuard(o.notify.settings.webhookAllow);
  const mask = async (owner: string, text: string) => SecretMasker.of((await ownerSecrets(o.pool, o.secretBox, owner)).values())?.line(text) ?? text;
  const channels = createChannels(
    { notify: o.notify.settings, publicUrl: o.notify.publicUrl() },
    { pool: o.pool, guard, log: o.log, store: o.store, secret: async (owner, name) => (await ownerSecrets(o.pool, o.secretBox, owner, name)).get(name) },
  );
  const sender = new NotifySender({
    pool: o.pool, channels, publicUrl: o.notify.publicUrl, leaseMs: o.notify.settings.leaseMs, log: o.log, mask,
  });
  const listener = new PgListener({
    connection: { ...o.pool.options, application_name: `kiln notify ${o.workerId}`.slice(0, 63) },
    channels: [NOTIFY_CHANNEL],
    onNotification: () => sender.wake(),
    onReconnect: () => sender.wake(),
    log: o.log,
  });
  await listener.start();
  sender.start();
  return {
    async stop() {
      await listener.stop().catch(() => {});
      await sender.stop();
    },
  };
}
