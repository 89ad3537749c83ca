import { ConfigError } from '../errors.js';
import { EMAIL_PATTERN } from '../jobfile/values.js';
import { parseTargetPolicy, type TargetPolicy } from '../util/targetPolicy.js';
import { type Env, int, str, url } from './env.js';

/** How Kiln delivers notifications (docs/design.md#notifications). */
export interface NotifySettings {
  /** KILN_WEBHOOK_ALLOW: private or loopback targets the operator allows (CIDRs, host names). */
  webhookAllow: TargetPolicy;
  /** KILN_SMTP_URL (smtp:// or smtps://, credentials in the URL); null: email rules cannot deliver. */
  smtpUrl: string | null;
  /** KILN_SMTP_FROM; default `kiln@<host of KILN_PUBLIC_URL>` (`kiln@localhost` without one). */
  smtpFrom: string;
  /**
   * KILN_NOTIFY_LEASE_MS (default 30 s): how long a sender holds a claimed delivery; a sender that
   * died holding it is replaced once it runs out, with the same delivery id.
   */
  leaseMs: number;
}

/** The notification settings from the environment; `publicUrl` is KILN_PUBLIC_URL's origin, if set. */
export function loadNotify(env: Env, publicUrl: string | null): NotifySettings {
  const allowRaw = str(env, 'KILN_WEBHOOK_ALLOW');
  let webhookAllow: TargetPolicy;
  try {
    webhookAllow = parseTargetPolicy(allowRaw === undefined ? [] : allowRaw.split(/[,\s]+/).filter(Boolean));
  } catch (err) {
    throw new ConfigError('KILN_WEBHOOK_ALLOW', `${(err as Error).message} (a comma-separated list of CIDR blocks and host names)`);
  }
  const smtpUrl = url(env, 'KILN_SMTP_URL', ['smtp:', 'smtps:']) ?? null;
  if (smtpUrl !== null && new URL(smtpUrl).hostname === '') throw new ConfigError('KILN_SMTP_URL', `names no host: "${smtpUrl}"`);
  const from = str(env, 'KILN_SMTP_FROM');
  if (from !== undefined && !EMAIL_PATTERN.test(from)) {
    throw new ConfigError('KILN_SMTP_FROM', `must be an email address such as kiln@example.com, got "${from}"`);
  }
  const host = publicUrl === null ? 'localhost' : new URL(publicUrl).hostname.replace(/^\[|\]$/g, '');
  return Object.freeze({
    webhookAllow: Object.freeze(webhookAllow),
    smtpUrl,
    smtpFrom: from ?? `kiln@${host}`,
    leaseMs: int(env, 'KILN_NOTIFY_LEASE_MS', 30_000, 1000, 3_600_000),
  });
}
