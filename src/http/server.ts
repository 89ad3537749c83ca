import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApolloServer } from '@apollo/server';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { ApolloServerPluginCacheControlDisabled, ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import { expressMiddleware } from '@as-integrations/express5';
import express from 'express';
import { GraphQLError, type GraphQLSchema } from 'graphql';
import { OidcBrowserClient } from '../auth/oidcBrowser.js';
import type { AuthConfig, TokenVerifier } from '../auth/types.js';
import type { WebSettings } from '../config/web.js';
import { DomainError } from '../errors.js';
import { opsMiddleware, processOps, type OpsEndpoints } from '../ops/endpoints.js';
import { EventHub } from '../events/EventHub.js';
import { buildContext, type Context } from '../resolvers/context.js';
import { formatError } from '../resolvers/formatError.js';
import { resolveSubscriptionPayloadsDirectly } from '../resolvers/subscription.resolver.js';
import type { Deps } from '../services/deps.js';
import { playgroundRouter } from './playground.js';
import { hooksRouter } from './hooks.js';
import { graphqlBody, operationGuard } from './queryLimits.js';
import { RateLimiter } from './rateLimit.js';
import { graphqlWrites, RequestAuth } from './requestAuth.js';
import { restRouter } from './rest.js';
import type { SignIn } from './signInRoutes.js';
import { defaultWebDir, webAppRouter } from './webApp.js';
import { startGraphqlWs } from './websocket.js';

export interface HttpOptions {
  deps: Deps;
  /** How tokens are verified; also decides how browsers sign in. */
  auth: AuthConfig;
  verifier: TokenVerifier;
  schema: GraphQLSchema;
  host: string;
  port: number;
  log: (message: string) => void;
  /** /healthz, /readyz and /metrics of this process (default: Postgres and store checks, fresh metrics). */
  ops?: OpsEndpoints;
  /** The built web app (default dist/web of the package, src/http/webApp.ts). */
  webDir?: string;
}

export interface HttpRole {
  url: string;
  port: number;
  server: Server;
  stop(): Promise<void>;
}

/** Local mode's one-time links, or the identity provider when Kiln is registered with it as a client. */
function signInOf(auth: AuthConfig, web: Readonly<WebSettings>, verifier: TokenVerifier): SignIn {
  if (auth.mode === 'local') return { mode: 'local' };
  if (web.oidc === null) {
    return { mode: 'none', why: 'Set KILN_OIDC_CLIENT_ID (and KILN_OIDC_CLIENT_SECRET for a confidential client) to sign browsers in through the identity provider.' };
  }
  return { mode: 'oidc', client: new OidcBrowserClient(auth, web.oidc, verifier) };
}

/** A context failure (no or bad token) as the GraphQL error Apollo answers with HTTP 401. */
function contextError(err: unknown): GraphQLError {
  if (err instanceof DomainError) {
    return new GraphQLError(err.message, { extensions: { code: err.code, http: { status: err.httpStatus } } });
  }
  return new GraphQLError('internal server error', { extensions: { code: 'INTERNAL_SERVER_ERROR' } });
}

/**
 * The API role: GraphQL over HTTP and graphql-ws on one path (`/graphql`), the REST routes under
 * `/api/v1`, and health endpoints. Binds to `host:port` (port 0 picks a free one).
 */
export async function startHttp(opts: HttpOptions): Promise<HttpRole> {
  const { deps, verifier, schema, log } = opts;
  const app = express();
  app.disable('x-powered-by');
  const httpServer = createServer(app);

  resolveSubscriptionPayloadsDirectly(schema);
  const guard = operationGuard(deps.config.queryLimits, { introspection: deps.config.introspection });
  const events = await EventHub.start({ orm: deps.orm, pool: deps.pool, store: deps.store, log });
  // One set of budgets for GraphQL over HTTP, REST and sockets, shared with every API process
  // on the database (rateLimit.ts).
  const limiter = new RateLimiter(deps.config.rateLimit, { pool: deps.pool, trustedProxies: deps.config.trustedProxies, log });
  const auth = new RequestAuth(verifier, deps.pool, deps.config.web);
  const subOf = (req: express.Request) => auth.identify(req).then((identity) => identity?.principal.sub ?? null);
  const ws = startGraphqlWs({ httpServer, schema, deps, auth, events, guard, log, limiter });
  let liveClosed: Promise<void> | null = null;
  const closeLive = (): Promise<void> => {
    liveClosed ??= Promise.resolve(ws.dispose()).then(() => events.stop());
    return liveClosed;
  };

  const apollo = new ApolloServer<Context>({
    schema,
    formatError: (formatted, error) => formatError(formatted, error, log),
    // The same limits as the socket's (queryLimits.ts).
    validationRules: guard.rules,
    parseOptions: guard.parseOptions,
    introspection: deps.config.introspection,
    plugins: [
      ApolloServerPluginDrainHttpServer({ httpServer }),
      ApolloServerPluginLandingPageDisabled(),
      // Apollo's default cache-control plugin wraps every field's resolver to gather cache hints
      // Kiln never gives; all it ever concluded was `no-store`, which is said here directly.
      ApolloServerPluginCacheControlDisabled(),
      { requestDidStart: async () => ({ willSendResponse: async ({ response }) => void response.http.headers.set('cache-control', 'no-store') }) },
      // Sockets and the event listener close with the HTTP server, before the database does.
      { serverWillStart: async () => ({ drainServer: closeLive }) },
    ],
  });
  try {
    await apollo.start();
  } catch (err) {
    await closeLive();
    throw err;
  }

  // Before the rate limiter and the routes: probes and scrapes need no token and are never limited.
  app.use(opsMiddleware(opts.ops ?? processOps(deps, log)));
  // The web app's pages and files: public (the page asks for the session itself), never limited.
  app.use(webAppRouter(opts.webDir ?? defaultWebDir(), log));
  // Webhooks carry no token (their signature is their authentication): limited per address.
  app.use('/api/v1/hooks', limiter.middleware(async () => null, 'rest'), hooksRouter(deps, log));
  app.use('/api/v1', limiter.middleware(subOf, 'rest'), restRouter(deps, auth, signInOf(opts.auth, deps.config.web, verifier), log));
  if (deps.config.playground) app.use(playgroundRouter());
  app.use(
    '/graphql',
    // Counted before the body is read: a flood costs a token check each, not a JSON parse.
    limiter.middleware(subOf, 'graphql'),
    // ...and charged for the body it turns out to have, decompressed (rateLimit.ts).
    ...graphqlBody((req, bytes) => limiter.chargeBody(req, bytes)),
    expressMiddleware(apollo, {
      context: async ({ req }) => {
        try {
          return buildContext(deps, (await auth.require(req, graphqlWrites(req))).principal);
        } catch (err) {
          throw contextError(err);
        }
      },
    }),
  );

  try {
    await new Promise<void>((resolve, reject) => {
      httpServer.once('error', reject);
      httpServer.listen(opts.port, opts.host, () => resolve());
    });
  } catch (err) {
    await apollo.stop().catch(() => {});
    await closeLive();
    throw err;
  }
  const port = (httpServer.address() as AddressInfo).port;
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  return {
    url: `http://${host}:${port}`,
    port,
    server: httpServer,
    async stop() {
      await apollo.stop();
    },
  };
}
