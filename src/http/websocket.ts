import type { IncomingMessage, Server } from 'node:http';
import type { Socket } from 'node:net';
import { GraphQLError, type ExecutionResult, type GraphQLFormattedError, type GraphQLSchema } from 'graphql';
import { CloseCode } from 'graphql-ws';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { bearerToken } from '../auth/token.js';
import type { Principal, TokenVerifier } from '../auth/types.js';
import type { EventHub } from '../events/EventHub.js';
import type { Context } from '../resolvers/context.js';
import { formatError } from '../resolvers/formatError.js';
import type { Deps } from '../services/deps.js';
import { MAX_GRAPHQL_BODY_BYTES, type OperationGuard } from './queryLimits.js';
import { addressKey, bodyCost, RATE_LIMITED, userKey, type RateLimiter, type Refusal } from './rateLimit.js';
import { sharedResultSubscribe } from './sharedSubscribe.js';
import { keepSocketAlive } from './socketKeepAlive.js';
import { batchSocketWrites } from './socketWrites.js';

/** What the graphql-ws transport needs. */
export interface WebSocketOptions {
  httpServer: Server;
  schema: GraphQLSchema;
  deps: Deps;
  verifier: TokenVerifier;
  events: EventHub;
  guard: OperationGuard;
  log: (message: string) => void;
  /** Most operations one socket may run at once; default 100. */
  maxOperationsPerSocket?: number;
  /**
   * The buckets shared with HTTP: each upgrade costs its client address a token, connection_init
   * and each operation (`subscribe`) their user one, and every message one more per 64 KiB.
   */
  limiter?: RateLimiter;
}

/** Close code of a socket that sent a message over MAX_GRAPHQL_BODY_BYTES (RFC 6455 "Message Too Big"). */
export const MESSAGE_TOO_BIG = 1009;
/** Close code of a socket whose connection_init is over its user's rate limit (RFC 6455 "Try Again Later"). */
export const TRY_AGAIN_LATER = 1013;

/** Kept per socket: who it is, and the timer that closes it when their token expires. */
type SocketState = {
  principal?: Principal;
  expiry?: NodeJS.Timeout;
};

/** Close code and reason of a refused or expired socket (docs/design.md#api). */
export const FORBIDDEN = { code: CloseCode.Forbidden, reason: 'Forbidden' } as const;
export const TOKEN_EXPIRED_REASON = 'Forbidden: token expired';

/** setTimeout holds at most ~24.8 days; longer waits are re-armed. */
const MAX_TIMER_MS = 2 ** 31 - 1;

function closeAtExpiry(state: SocketState, expSeconds: number, close: () => void): void {
  const wait = expSeconds * 1000 - Date.now();
  state.expiry = setTimeout(
    () => (wait > MAX_TIMER_MS ? closeAtExpiry(state, expSeconds, close) : close()),
    Math.max(0, Math.min(wait, MAX_TIMER_MS)),
  );
}

/**
 * Answers an upgrade over its address's rate limit with 429 and `Retry-After` in the GraphQL
 * error shape of HTTP, written on the raw socket (there is no response object before the
 * handshake), and drops the connection once it is sent.
 */
function refuseUpgrade(socket: Socket, limiter: RateLimiter, refusal: Refusal): void {
  const body = JSON.stringify({
    errors: [{ message: limiter.message(refusal), extensions: { code: RATE_LIMITED, retryAfterSeconds: refusal.retryAfterSeconds } }],
  });
  socket.on('error', () => socket.destroy());
  socket.once('finish', () => socket.destroy());
  socket.end(
    'HTTP/1.1 429 Too Many Requests\r\n' +
      `Retry-After: ${refusal.retryAfterSeconds}\r\n` +
      'Content-Type: application/json; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      'Connection: close\r\n\r\n' +
      body,
  );
}

function messageBytes(data: RawData): number {
  if (Array.isArray(data)) return data.reduce((n, b) => n + b.length, 0);
  return data instanceof ArrayBuffer ? data.byteLength : data.length;
}

function formatted(errors: readonly GraphQLError[], log: (m: string) => void): GraphQLFormattedError[] {
  return errors.map((e) => formatError(e.toJSON(), e, log));
}

/**
 * graphql-ws on the HTTP server's `/graphql` path. The token in
 * `connectionParams.authorization` is verified on connect (a refusal closes with 4403), the
 * socket is closed with 4403 when that token expires, every operation passes the same limits
 * as over HTTP, and errors carry the same codes (formatError).
 */
export function startGraphqlWs(opts: WebSocketOptions): { dispose(): void | Promise<void> } {
  const { schema, deps, verifier, events, guard, log } = opts;
  const maxOperations = opts.maxOperationsPerSocket ?? 100;
  // Like the HTTP body limit. A bigger message is never buffered: `ws` closes the socket with
  // 1009 (Message Too Big) as soon as the frame header announces it; other sockets go on.
  const wsServer = new WebSocketServer({ noServer: true, maxPayload: MAX_GRAPHQL_BODY_BYTES });
  // Whose bucket each socket's messages are charged to: its client address until connection_init
  // names a user, that user's afterwards.
  const payers = new WeakMap<WebSocket, { key: string }>();
  // Upgrades are taken here rather than by `ws` itself, to reach each TCP socket (batchSocketWrites).
  const onUpgrade = (request: IncomingMessage, socket: Socket, head: Buffer) => {
    if (new URL(request.url ?? '/', 'http://localhost').pathname !== '/graphql') {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
      return;
    }
    // A socket costs a handshake, buffers and a token verification: each costs its client address
    // a token (there is no identity before connection_init), refused before any of that is done.
    const payer = { key: addressKey(socket.remoteAddress) };
    const refusal = opts.limiter?.take(payer.key) ?? null;
    if (refusal !== null) {
      refuseUpgrade(socket, opts.limiter!, refusal);
      return;
    }
    wsServer.handleUpgrade(request, socket, head, (ws) => {
      batchSocketWrites(ws, socket);
      keepSocketAlive(ws, socket, deps.config.wsKeepAliveMs);
      payers.set(ws, payer);
      // Before graphql-ws's own listener, which parses every message whatever its type: each one
      // costs a token per 64 KiB on top of the token its operation or connection_init takes, so a
      // message costs 1 + bytes / 64 KiB like an HTTP body. Charged as debt, since it is parsed anyway.
      ws.on('message', (data: RawData) => opts.limiter?.charge(payer.key, bodyCost(messageBytes(data)) - 1));
      wsServer.emit('connection', ws, request);
      // graphql-ws reports every socket error as an internal one ("check your implementation")
      // and closes with 4500; an oversized message is the client's doing, and `ws` has already
      // closed that socket with 1009. Replaces its handler, keeping the 4500 for anything else.
      ws.removeAllListeners('error');
      ws.on('error', (err: Error & { code?: string }) => {
        if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') {
          log(`closed a WebSocket with ${MESSAGE_TOO_BIG}: a message over ${MAX_GRAPHQL_BODY_BYTES} bytes`);
        } else {
          log(`WebSocket error: ${err.message}`);
          ws.close(CloseCode.InternalServerError, 'Internal server error');
        }
      });
    });
  };
  opts.httpServer.on('upgrade', onUpgrade);
  // biome-ignore lint/correctness/useHookAtTopLevel: graphql-ws's useServer is not a React hook
  const server = useServer<Record<string, unknown> | undefined, SocketState>(
    {
      schema,
      subscribe: sharedResultSubscribe(),
      // Returning false closes the socket with 4403 Forbidden.
      onConnect: async (ctx) => {
        const auth = ctx.connectionParams?.authorization;
        const token = bearerToken(typeof auth === 'string' ? auth : undefined);
        if (token === null) return false;
        let principal: Principal;
        try {
          principal = await verifier.verify(token);
        } catch {
          return false;
        }
        // connection_init counts like a request of this user (the upgrade was its address's).
        const key = userKey(principal.sub);
        const refusal = opts.limiter?.take(key) ?? null;
        if (refusal !== null) {
          // Closed before graphql-ws's 4403 for a refusal (a second close is ignored).
          ctx.extra.socket.close(TRY_AGAIN_LATER, Buffer.from(opts.limiter!.message(refusal)).subarray(0, 123).toString());
          return false;
        }
        const payer = payers.get(ctx.extra.socket);
        if (payer !== undefined) payer.key = key;
        ctx.extra.principal = principal;
        closeAtExpiry(ctx.extra, principal.exp, () => ctx.extra.socket.close(FORBIDDEN.code, TOKEN_EXPIRED_REASON));
        return true;
      },
      onClose: (ctx) => {
        if (ctx.extra.expiry !== undefined) clearTimeout(ctx.extra.expiry);
      },
      onSubscribe: (ctx, _id, payload) => {
        if (Object.keys(ctx.subscriptions).length > maxOperations) {
          return [new GraphQLError(`at most ${maxOperations} operations may run at once on one socket`, { extensions: { code: 'BAD_REQUEST' } })];
        }
        // Each operation counts like an HTTP request of the same user (rateLimit.ts).
        const refusal = opts.limiter?.take(userKey(ctx.extra.principal!.sub)) ?? null;
        if (refusal !== null) return [opts.limiter!.graphqlError(refusal)];
        const checked = guard.check(schema, payload.query);
        if ('errors' in checked) return checked.errors;
        return { schema, document: checked.document, variableValues: payload.variables, operationName: payload.operationName };
      },
      context: (ctx): Context => ({ principal: ctx.extra.principal!, em: deps.orm.em.fork(), deps, events }),
      onNext: (_ctx, _id, _payload, _args, result) => {
        const r = result as ExecutionResult;
        if (!r.errors) return undefined;
        return { ...r, errors: formatted(r.errors, log) } as unknown as ExecutionResult;
      },
      onError: (_ctx, _id, _payload, errors) => formatted(errors, log) as unknown as GraphQLError[],
    },
    wsServer,
    // Off: keepSocketAlive does it, counting a slow reader's progress as a sign of life.
    Infinity,
  );
  return {
    dispose: async () => {
      opts.httpServer.off('upgrade', onUpgrade);
      await server.dispose();
    },
  };
}
