import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';

/** One message the sink accepted, as it came over the wire and with its single text part read. */
export interface SinkMail {
  from: string;
  to: string[];
  /** The message as sent (headers and body, CRLF line ends). */
  raw: string;
  /** Unfolded header values by lower-case name (the last one of a repeated header). */
  headers: Map<string, string>;
  /** The text body, its transfer encoding (7bit, 8bit or base64) undone. */
  text: string;
}

export interface SmtpSink {
  /** `smtp://127.0.0.1:<port>`, for KILN_SMTP_URL. */
  url: string;
  /** Messages answered 250, in order. */
  mails: SinkMail[];
  /** Every DATA the sink answered: its recipients and the code it answered. */
  answered: Array<{ to: string[]; code: number }>;
  /** Resolves once `count` messages were accepted; rejects after `timeoutMs`. */
  waitForMails(count: number, timeoutMs: number): Promise<SinkMail[]>;
  stop(): Promise<void>;
}

/**
 * A real SMTP server on 127.0.0.1 (smtp-server), plain text, no auth, that keeps what it is sent.
 * `answer(to, n)` gives the reply code to a DATA for these recipients, the n-th for them (1-based):
 * 250 accepts, a 4xx or 5xx refuses the message with that code. Accepts everything by default.
 */
export async function startSmtpSink(opts: { answer?: (to: string[], n: number) => number } = {}): Promise<SmtpSink> {
  const mails: SinkMail[] = [];
  const answered: SmtpSink['answered'] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData(stream, session, done) {
      const parts: Buffer[] = [];
      stream.on('data', (b: Buffer) => parts.push(b));
      stream.on('end', () => {
        const to = session.envelope.rcptTo.map((r) => r.address);
        const n = answered.filter((a) => a.to.join() === to.join()).length + 1;
        const code = opts.answer?.(to, n) ?? 250;
        answered.push({ to, code });
        if (code !== 250) {
          done(Object.assign(new Error(code < 500 ? 'try again later' : 'mailbox unavailable'), { responseCode: code }));
          return;
        }
        const raw = Buffer.concat(parts).toString('utf8');
        const from = session.envelope.mailFrom === false ? '' : session.envelope.mailFrom.address;
        mails.push({ from, to, raw, ...readSinglePart(raw) });
        done();
      });
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.server.address() as AddressInfo).port;
  return {
    url: `smtp://127.0.0.1:${port}`,
    mails,
    answered,
    async waitForMails(count, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      while (mails.length < count) {
        if (Date.now() > deadline) throw new Error(`the SMTP sink received ${mails.length} of ${count} mails within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 50));
      }
      return mails.slice(0, count);
    },
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Headers and text of a single-part text/plain message; a multipart one fails the test, Kiln sends none. */
function readSinglePart(raw: string): { headers: Map<string, string>; text: string } {
  const split = raw.indexOf('\r\n\r\n');
  const head = raw.slice(0, split).replace(/\r\n[ \t]+/g, ' ');
  const headers = new Map<string, string>();
  for (const line of head.split('\r\n')) {
    const colon = line.indexOf(':');
    headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  const type = headers.get('content-type') ?? 'text/plain';
  if (!type.startsWith('text/plain')) throw new Error(`the sink reads text/plain mails only, not ${type}`);
  const body = raw.slice(split + 4);
  const encoding = (headers.get('content-transfer-encoding') ?? '7bit').toLowerCase();
  if (encoding === 'base64') return { headers, text: Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8') };
  if (encoding === '7bit' || encoding === '8bit') return { headers, text: body.replace(/\r\n$/, '') };
  throw new Error(`the sink does not decode ${encoding}: the channel sends base64`);
}
