import type { Kiln } from './app.js';
import { signInHint } from './signInHint.js';
import type { Log } from './util/log.js';

/** What the first lines a person reads say: where Kiln is, and how to sign in. */
export interface Ready {
  url: string;
  signIn: string;
}

/**
 * The web app's address (the API's listener) and how to sign in: `kiln start`'s one-time link in
 * local mode (docs/design.md#web-sessions), else the hint for the mode; null without the API.
 */
export async function readiness(kiln: Kiln, oneTimeLink: string | null = null): Promise<Ready | null> {
  if (kiln.http === null) return null;
  const url = kiln.http.url;
  return { url, signIn: oneTimeLink ?? (await signInHint(kiln, url)) };
}

/**
 * Says that Kiln is ready (docs/design.md#start-banner). On a terminal (readable log lines) it is a
 * block set apart from the log, so that it is the first thing a person finds; in JSON mode it is
 * one log line with `url` and `signIn` as fields, for whatever reads the log.
 */
export function announce(ready: Ready, style: { readable: boolean; colour: boolean }, log: Log, write: (text: string) => void): void {
  if (!style.readable) {
    log(`Kiln is ready at ${ready.url}/`, { url: ready.url, signIn: ready.signIn });
    return;
  }
  const bold = (s: string) => (style.colour ? `\x1b[1m${s}\x1b[22m` : s);
  const lines = [
    '',
    `  ${bold('Kiln is ready')}  ${ready.url}/`,
    `  GraphQL   ${ready.url}/graphql   REST  ${ready.url}/api/v1`,
    `  Sign in   ${ready.signIn}`,
    '',
  ];
  write(lines.join('\n') + '\n');
}
