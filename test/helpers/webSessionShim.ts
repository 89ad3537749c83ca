import type { BrowserContext } from 'playwright-core';
import type { TestKiln } from './kiln.js';

/** TEMPORARY until web-auth's sessions land: rides a bearer token on the page's requests and socket. */
export async function signIn(context: BrowserContext, kiln: TestKiln, user: string): Promise<void> {
  const token = await kiln.token(user);
  await context.route(`${kiln.url}/api/v1/session`, (route) => route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify({ user: { id: user, name: user } }) }));
  await context.route((url) => url.pathname === '/graphql' || url.pathname.startsWith('/api/v1/executions/'), (route) =>
    route.fallback({ headers: { ...route.request().headers(), authorization: `Bearer ${token}` } }),
  );
  await context.routeWebSocket(/\/graphql$/, (ws) => {
    const server = ws.connectToServer();
    ws.onMessage((message) => {
      const m = JSON.parse(String(message));
      if (m.type === 'connection_init') m.payload = { ...(m.payload ?? {}), authorization: `Bearer ${token}` };
      server.send(JSON.stringify(m));
    });
  });
}
