import nodemailer from 'nodemailer';
import type pg from 'pg';
import { lastLogLines } from '../../logs/lastLines.js';
import { SecretMasker } from '../../logs/mask.js';
import type { ArtifactStore } from '../../storage/ArtifactStore.js';
import { MAIL_LOG_LINES, renderMail } from './emailMessage.js';
import type { NotifySettings } from '../../config/notify.js';
import type { Channel, DeliveryToSend, SendResult } from './types.js';

/** The part of the channels' configuration (ChannelConfig) mail needs. */
export interface EmailConfig {
  notify: Pick<NotifySettings, 'smtpUrl' | 'smtpFrom'>;
}

/** What the email channel reads (ChannelDeps gives it): the log, in Postgres or archived, and the owner's secrets. */
export interface EmailDeps {
  pool: pg.Pool;
  store: ArtifactStore;
  /** The plain value of `owner`'s stored secret `name`; undefined when it is not stored. */
  secret(owner: string, name: string): Promise<string | undefined>;
}

/** Every email delivery while KILN_SMTP_URL is unset: a permanent failure that says why. */
const NOT_CONFIGURED: SendResult = { ok: false, permanent: true, responseCode: null, error: 'KILN_SMTP_URL is not set' };

/** An SMTP conversation is given this long per phase (connect, greeting, each reply). */
const SMTP_TIMEOUT_MS = 10_000;

/**
 * The email channel (docs/design.md#notification-email): one message per delivery to the rule's
 * addresses, through the relay at KILN_SMTP_URL. Message-ID is `<delivery id@kiln>`, so a
 * delivery sent again after a crash is the same message to every mail system that deduplicates.
 * A 4xx reply is temporary (the sender retries with backoff), a 5xx permanent.
 */
export function createEmailChannel(config: EmailConfig, deps: EmailDeps): Channel {
  const { smtpUrl, smtpFrom } = config.notify;
  if (smtpUrl === null) return { send: async () => NOT_CONFIGURED };
  // Not pooled: one connection per message, so a relay that drops idle connections costs nothing.
  const transport = nodemailer.createTransport({
    url: smtpUrl,
    connectionTimeout: SMTP_TIMEOUT_MS,
    greetingTimeout: SMTP_TIMEOUT_MS,
    socketTimeout: SMTP_TIMEOUT_MS,
  });
  return {
    async send(d: DeliveryToSend, signal: AbortSignal): Promise<SendResult> {
      const addresses = d.rule.email ?? [];
      if (addresses.length === 0) return { ok: false, permanent: true, responseCode: null, error: 'the rule names no email address' };
      const lines = d.executionId === null ? [] : await lastLogLines(deps.pool, deps.store, d.executionId, MAIL_LOG_LINES);
      const masker = await ownerMasker(deps, d.owner);
      const mail = renderMail(d.payload, lines, (text) => masker?.line(text) ?? text);
      const sent = transport.sendMail({
        from: smtpFrom,
        to: addresses,
        subject: mail.subject,
        text: mail.text,
        messageId: `<${d.id}@kiln>`,
        // A log line may hold any text at any length: base64 carries it through every relay unchanged.
        textEncoding: 'base64',
        headers: { 'X-Kiln-Delivery': d.id, 'X-Kiln-Event': d.event },
      });
      try {
        await abortable(sent, signal);
        return { ok: true, permanent: false, responseCode: 250, error: null };
      } catch (err) {
        return smtpFailure(err);
      }
    },
  };
}

/** A masker for every secret the owner stores (an error text may quote any of them), or null. */
async function ownerMasker(deps: EmailDeps, owner: string): Promise<SecretMasker | null> {
  const { rows } = await deps.pool.query<{ name: string }>(`select name from secrets where owner = $1`, [owner]);
  const values = await Promise.all(rows.map((r) => deps.secret(owner, r.name)));
  return SecretMasker.inSlices(values.filter((v) => v !== undefined));
}

/** How a refused or broken SMTP conversation ends: 4xx and network errors retry, 5xx is final. */
export function smtpFailure(err: unknown): SendResult {
  const e = err as { responseCode?: number; response?: string; message?: string };
  const code = typeof e.responseCode === 'number' ? e.responseCode : null;
  const error = e.response ?? e.message ?? String(err);
  return { ok: false, permanent: code !== null && code >= 500, responseCode: code, error };
}

/** `promise`, or a rejection as soon as `signal` aborts (nodemailer takes no signal; its own timeouts end the socket). */
function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new Error('sending was aborted'));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new Error('sending was aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
