import type { Kiln } from './app.js';

/**
 * How a person signs in, for the lines `kiln serve` (and `kiln start` when it has no one-time
 * link to give) print once they listen (startBanner.ts, docs/design.md#start-banner).
 */
export async function signInHint(kiln: Kiln, url: string): Promise<string> {
  if (kiln.auth?.mode === 'jwks') return `${url}/api/v1/login with your identity provider (${kiln.auth.issuer}); the CLI signs in with \`kiln login\``;
  return `local mode: \`kiln token <user>\` prints a token, for the CLI (KILN_TOKEN) and for GraphiQL at ${url}/graphql`;
}
