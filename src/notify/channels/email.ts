import nodemailer from 'nodemailer';
import { lastLogLines } from '../../logs/lastLines.js';
import { MAIL_LOG_LINES, renderMail } from './emailMessage.js';
import type { Channel, ChannelConfig, ChannelDeps, DeliveryToSend, SendResult } from './types.js';

/** Every email delivery while KILN_SMTP_URL is unset: a permanent failure that says why. */
const NOT_CONFIGURED: SendResult = { ok: false, permanent: true, responseCode: null, error: 'KILN_SMTP_URL is not set' };

/** An SMTP conversation is given this long per phase (connect, greeting, each reply). */
const SMTP_TIMEOUT_MS = 10_000;

/**
 * The email channel (docs/design.md#notification-email): one message per delivery to the rule's
 * addresses, through the relay at KILN_SMTP_URL. Message-ID is `<delivery id@kiln>`, so a
 * delivery sent again after a crash is the same message to every mail system that deduplicates.
 * A 4xx reply is temporary (the sender retries with backoff), a 5xx permanent. The error text and
 * the log lines go out as stored, as Slack and webhooks get them: the worker masked them when it
 * wrote them (docs/design.md#masking, "Error texts").
 */
export function createEmailChannel(config: ChannelConfig, deps: ChannelDeps): Channel {
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
      const mail = renderMail(d.payload, lines, d.payload.execution?.error ?? null);
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
