import type { Kiln } from './app.js';

/**
 * How a person signs in, for the lines `kiln start` and `kiln serve` print once they listen
 * (startBanner.ts). This is the hook the web sign-in fills in (docs/design.md#start-banner): in
 * local mode it is to return the one-time sign-in link it mints for the first user; until then
 * it names the way that works today, a token from `kiln token`.
 */
export async function signInHint(kiln: Kiln, url: string): Promise<string> {
  if (kiln.auth?.mode === 'jwks') return `with your identity provider (${kiln.auth.issuer}); the CLI signs in with \`kiln login\``;
  return `local mode: \`kiln token <user>\` prints a token, for the CLI (KILN_TOKEN) and for GraphiQL at ${url}/graphql`;
}
