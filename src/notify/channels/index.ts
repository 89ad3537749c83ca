import type { NotifyChannelName } from '../../jobfile/types.js';
import type { Channel, ChannelConfig, ChannelDeps, SendResult } from './types.js';
import { createEmailChannel } from './email.js';
import { createSlackChannel } from './slack.js';
import { createWebhookChannel } from './webhook.js';

export type { ChannelConfig, ChannelDeps } from './types.js';

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
