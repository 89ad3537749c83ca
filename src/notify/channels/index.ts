import type pg from 'pg';
import type { NotifySettings } from '../../config/notify.js';
import type { NotifyChannelName } from '../../jobfile/types.js';
import type { ArtifactStore } from '../../storage/ArtifactStore.js';
import type { Log } from '../../util/log.js';
import type { TargetGuard } from '../targetGuard.js';
import type { Channel, SendResult } from './types.js';
import { createEmailChannel } from './email.js';
import { createSlackChannel } from './slack.js';
import { createWebhookChannel } from './webhook.js';

/** What every channel is configured with. */
export interface ChannelConfig {
  notify: NotifySettings;
  /** Where people reach Kiln: KILN_PUBLIC_URL, or http://HOST:PORT (links in messages). */
  publicUrl: string;
}

/** What channels use at send time. */
export interface ChannelDeps {
  pool: pg.Pool;
  /** The plain value of `owner`'s stored secret `name`; undefined when it is not stored. */
  secret(owner: string, name: string): Promise<string | undefined>;
  /** Checks and pins where an HTTP target resolves (webhook, Slack). */
  guard: TargetGuard;
  log: Log;
  /** Where archived logs are: a mail quotes the last lines of a log whose chunks were pruned. */
  store: ArtifactStore;
}

/** A channel that cannot deliver at all in this build or configuration: every delivery fails for good. */
export function unavailableChannel(why: string): Channel {
  const result: SendResult = { ok: false, permanent: true, responseCode: null, error: why };
  return { send: async () => result };
}

/** One channel per name (docs/design.md#notifications). */
export function createChannels(config: ChannelConfig, deps: ChannelDeps): Record<NotifyChannelName, Channel> {
  return {
    webhook: createWebhookChannel(config, deps),
    slack: createSlackChannel(config, deps),
    email: createEmailChannel(config, deps),
  };
}
