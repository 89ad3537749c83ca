import { createHmac } from 'node:crypto';
import { postJson } from './httpPost.js';
import type { Channel, ChannelConfig, ChannelDeps } from './types.js';

/** `sha256=` and the hex HMAC-SHA256 of `body` keyed by `secret`: GitHub's form, which receivers already check. */
export function signBody(secret: string, body: Buffer): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/**
 * The webhook channel (docs/design.md#notifications): the payload as a JSON POST, with the event,
 * the delivery id (the same on every attempt: receivers deduplicate on it) and, when the rule names
 * a secret, the body's signature.
 */
export function createWebhookChannel(_config: ChannelConfig, deps: ChannelDeps): Channel {
  return {
    async send(d, signal) {
      const hook = d.rule.webhook;
      if (hook === undefined) return { ok: false, permanent: true, responseCode: null, error: `rule ${d.ruleIndex} has no webhook any more` };
      const body = Buffer.from(JSON.stringify(d.payload), 'utf8');
      const headers: Record<string, string> = {
        'Content-Type': 'application/json',
        'User-Agent': 'Kiln',
        'X-Kiln-Event': d.event,
        'X-Kiln-Delivery': d.id,
      };
      if (hook.secret !== undefined) {
        const secret = await deps.secret(d.owner, hook.secret);
        if (secret === undefined) return { ok: false, permanent: true, responseCode: null, error: `secret ${hook.secret} is not stored (setSecret): the body cannot be signed` };
        headers['X-Kiln-Signature-256'] = signBody(secret, body);
      }
      return postJson(new URL(hook.url), body, headers, deps.guard, signal);
    },
  };
}
