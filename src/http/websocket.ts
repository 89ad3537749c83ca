import type { IncomingMessage, Server } from 'node:http';
import type { Socket } from 'node:net';
import { GraphQLError, type ExecutionResult, type GraphQLFormattedError, type GraphQLSchema } from 'graphql';
import { CloseCode } from 'graphql-ws';
import { WebSocketServer, type RawData, type ServerOptions, type WebSocket } from 'ws';
import { bearerToken } from '../auth/token.js';
import type { Principal } from '../auth/types.js';
import type { EventHub } from '../events/EventHub.js';
import type { Context } from '../resolvers/context.js';
import { formatError } from '../resolvers/formatError.js';
import type { Deps } from '../services/deps.js';
import { graphqlWsOver, type SocketExtra } from './graphqlWsAdapter.js';
import { MAX_GRAPHQL_BODY_BYTES, type OperationGuard } from './queryLimits.js';
import type { RequestAuth } from './requestAuth.js';
import { bodyCost, RATE_LIMITED, RateLimiter, userKey, type Refusal } from './rateLimit.js';
import { sharedResultSubscribe } from './sharedSubscribe.js';
import { SocketCaps } from './socketCaps.js';
import { keepSocketAlive } from './socketKeepAlive.js';
import { closeSlowReaders } from './socketSlowReader.js';
import { batchSocketWrites } from './socketWrites.js';

/** What the graphql-ws transport needs. */
export interface WebSocketOptions {
  httpServer: Server;
  schema: GraphQLSchema;
  deps: Deps;
  /** Authenticates connection_init's bearer token, or else the upgrade's session cookie. */
  auth: RequestAuth;
  events: EventHub;
  guard: OperationGuard;
  log: (message: string) => void;
  /** Most operations one socket may run at once; default 100. */
  maxOperationsPerSocket?: number;
  /**
   * The budgets shared with HTTP (docs/design.md#socket-limits): each upgrade costs its client
   * address a token of a bucket apart from tokenless HTTP's, given back when the socket names its
   * user; every message costs its sender 1 token plus 1 per 64 KiB, connection_init included.
   */
  limiter?: RateLimiter;
}

/** The bucket of WebSocket upgrades (and of messages before connection_init) from one address. */
export function upgradeKey(addressKey: string): string {
  return `ws:${addressKey}`;
}

/** Close code of a socket that sent a message over MAX_GRAPHQL_BODY_BYTES (RFC 6455 "Message Too Big"). */
export const MESSAGE_TOO_BIG = 1009;
/** Close code of a socket whose connection_init is over its user's rate limit (RFC 6455 "Try Again Later"). */
export const TRY_AGAIN_LATER = 1013;
/** Close code of a socket past its user's cap on open sockets (RFC 6455 "Policy Violation"). */
export const TOO_MANY_SOCKETS = 1008;
/**
 * How long a socket the server closed may wait for its client's close frame before it is
 * dropped (ws's `closeTimeout`, 30 s by default). Until then ws reads and graphql-ws parses all
 * the client sends: a flooding client that never reads never answers the close, and kept the
 * server parsing its 64 KiB pings for 30 s after refusing it (docs/design.md#socket-limits).
 */
export const CLOSE_HANDSHAKE_MS = 1000;

/**
 * Kept per socket: who pays for its messages (its address's upgrade bucket until connection_init
 * names a user), what the message being handled cost and whether it was within budget, who it
 * is, and the timer that closes it when their token expires.
 */
type SocketState = SocketExtra & {
  payer: string;
  /** The upgrade bucket, refunded when the socket authenticates. */
  address: string;
  /** Set synchronously on each message, before graphql-ws's handler reads it (see onMessage). */
  lastCost: number;
  lastVerdict: Promise<Refusal | null>;
  principal?: Principal;
  expiry?: NodeJS.Timeout;
  /** The session the socket was opened on (hex of its id's hash), when not on a token. */
  sessionHash?: string;
  stopWatching?: () => void;
};

/** Close code and reason of a refused or expired socket (docs/design.md#api). */
export const FORBIDDEN = { code: CloseCode.Forbidden, reason: 'Forbidden' } as const;
export const TOKEN_EXPIRED_REASON = 'Forbidden: token expired';
export const SESSION_ENDED_REASON = 'Forbidden: signed out';

/**
 * Who opens a socket: the bearer token of connection_init's `authorization` when there is one,
 * else the upgrade's session cookie, taken only from Kiln's own Origin (another site's page
 * would otherwise ride the user's cookie: docs/design.md#web-sessions). null: refused.
 */
async function socketPrincipal(auth: RequestAuth, params: Record<string, unknown> | undefined, extra: SocketState): Promise<Principal | null> {
  try {
    const given = params?.authorization;
    if (given !== undefined) {
      const token = bearerToken(typeof given === 'string' ? given : undefined);
      return token === null ? null : await auth.verifier.verify(token);
    }
    if (!auth.sameOrigin(extra.request)) return null;
    const identity = await auth.identify(extra.request);
    if (identity?.session == null) return null;
    extra.sessionHash = identity.session.idHash.toString('hex');
    return identity.principal;
  } catch {
    return null;
  }
}

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
function refuseUpgrade(socket: Socket, message: string, retryAfterSeconds: number): void {
  const body = JSON.stringify({
    errors: [{ message, extensions: { code: RATE_LIMITED, retryAfterSeconds } }],
  });
  socket.on('error', () => socket.destroy());
  socket.once('finish', () => socket.destroy());
  socket.end(
    'HTTP/1.1 429 Too Many Requests\r\n' +
      `Retry-After: ${retryAfterSeconds}\r\n` +
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
  const { schema, deps, auth: requestAuth, events, guard, log } = opts;
  const maxOperations = opts.maxOperationsPerSocket ?? 100;
  const limiter = opts.limiter ?? new RateLimiter({ rps: 0, burst: 1 });
  const caps = new SocketCaps(deps.config.sockets);
  // Like the HTTP body limit. A bigger message is never buffered: `ws` closes the socket with
  // 1009 (Message Too Big) as soon as the frame header announces it; other sockets go on.
  // closeTimeout is an option of ws's WebSocketServer (lib/websocket-server.js) that @types/ws does not declare.
  const serverOptions: ServerOptions & { closeTimeout: number } = { noServer: true, maxPayload: MAX_GRAPHQL_BODY_BYTES, closeTimeout: CLOSE_HANDSHAKE_MS };
  const wsServer = new WebSocketServer(serverOptions);
  /** Closes a socket over its budget: 1013 with the refusal (at most 123 bytes of reason). */
  const tryAgainLater = (socket: WebSocket, refusal: Refusal) => {
    if (socket.readyState !== socket.OPEN) return;
    const reason = Buffer.from(limiter.message(refusal)).subarray(0, 123).toString();
    log(`closed a WebSocket with ${TRY_AGAIN_LATER}: ${reason}`);
    socket.close(TRY_AGAIN_LATER, reason);
  };
  const graphqlWs = graphqlWsOver<SocketState>(
    wsServer,
    {
      schema,
      subscribe: sharedResultSubscribe(),
      // Returning false closes the socket with 4403 Forbidden.
      onConnect: async (ctx) => {
        const cost = ctx.extra.lastCost;
        const principal = await socketPrincipal(requestAuth, ctx.connectionParams, ctx.extra);
        if (principal === null) return false;
        // Named, the socket is its user's: the upgrade and this message leave the address's
        // bucket (a tokenless flood from the same proxy must not lock users out) for the user's.
        void limiter.refund(ctx.extra.address, 1 + cost);
        const refusal = await limiter.take(userKey(principal.sub), cost);
        if (refusal !== null) {
          // Closed before graphql-ws's 4403 for a refusal (a second close is ignored).
          tryAgainLater(ctx.extra.socket, refusal);
          return false;
        }
        // Closed while this was verified and charged: its close already released its place.
        if (ctx.extra.socket.readyState !== ctx.extra.socket.OPEN) return false;
        if (!caps.admitUser(principal.sub)) {
          ctx.extra.socket.close(TOO_MANY_SOCKETS, caps.userMessage());
          return false;
        }
        caps.releasePending(ctx.extra.address);
        ctx.extra.payer = userKey(principal.sub);
        ctx.extra.principal = principal;
        closeAtExpiry(ctx.extra, principal.exp, () => ctx.extra.socket.close(FORBIDDEN.code, TOKEN_EXPIRED_REASON));
        if (ctx.extra.sessionHash !== undefined) {
          const close = () => ctx.extra.socket.close(FORBIDDEN.code, SESSION_ENDED_REASON);
          ctx.extra.stopWatching = requestAuth.onSessionEnd(ctx.extra.sessionHash, close);
        }
        return true;
      },
      onClose: (ctx) => {
        if (ctx.extra.expiry !== undefined) clearTimeout(ctx.extra.expiry);
        ctx.extra.stopWatching?.();
      },
      // A ping or pong over its sender's budget closes the socket: it asks for nothing a client
      // needs, and answering it is what a flood wants.
      onPing: async (ctx) => {
        const refusal = await ctx.extra.lastVerdict;
        if (refusal !== null) tryAgainLater(ctx.extra.socket, refusal);
      },
      onPong: async (ctx) => {
        const refusal = await ctx.extra.lastVerdict;
        if (refusal !== null) tryAgainLater(ctx.extra.socket, refusal);
      },
      onSubscribe: async (ctx, _id, payload) => {
        // Read before any await: it is this message's (see onMessage).
        const verdict = ctx.extra.lastVerdict;
        if (Object.keys(ctx.subscriptions).length > maxOperations) {
          return [new GraphQLError(`at most ${maxOperations} operations may run at once on one socket`, { extensions: { code: 'BAD_REQUEST' } })];
        }
        // Each operation counts like an HTTP request of the same user (rateLimit.ts).
        const refusal = await verdict;
        if (refusal !== null) return [limiter.graphqlError(refusal)];
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
    (err) => log(`WebSocket message failed: ${err instanceof Error ? err.message : String(err)}`),
  );

  // Upgrades are taken here rather than by `ws` itself, to reach each TCP socket (batchSocketWrites).
  const onUpgrade = (request: IncomingMessage, socket: Socket, head: Buffer) => {
    if (new URL(request.url ?? '/', 'http://localhost').pathname !== '/graphql') {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
      return;
    }
    void admitUpgrade(request, socket).then(
      (address) => address !== null && accept(request, socket, head, address),
      (err: unknown) => {
        log(`WebSocket upgrade failed: ${err instanceof Error ? err.message : String(err)}`);
        socket.destroy();
      },
    );
  };

  /**
   * A socket costs a handshake, buffers and a token verification: each costs its client address
   * a token of the upgrade bucket (there is no identity before connection_init), and an address
   * holds at most so many sockets that have not authenticated. The address key, or null when
   * refused with 429.
   */
  const admitUpgrade = async (request: IncomingMessage, socket: Socket): Promise<string | null> => {
    const address = upgradeKey(limiter.addressKeyOf({ socket, headers: request.headers }));
    const refusal = await limiter.take(address);
    if (refusal !== null) {
      refuseUpgrade(socket, limiter.message(refusal), refusal.retryAfterSeconds);
      return null;
    }
    if (!caps.admitPending(address)) {
      refuseUpgrade(socket, caps.pendingMessage(), 3);
      return null;
    }
    return address;
  };

  const accept = (request: IncomingMessage, socket: Socket, head: Buffer, address: string) => {
    if (socket.destroyed) return caps.releasePending(address);
    wsServer.handleUpgrade(request, socket, head, (ws) => {
      batchSocketWrites(ws, socket);
      keepSocketAlive(ws, socket, deps.config.wsKeepAliveMs);
      const slow = closeSlowReaders(ws, socket, deps.config.sockets, log);
      const send = ws.send.bind(ws);
      ws.send = ((...args: Parameters<WebSocket['send']>) => {
        send(...args);
        slow.check();
      }) as WebSocket['send'];
      // A socket the server closes is read no more (ws resumes it when the client's close frame
      // came first): a flooding client's messages would only be parsed to be thrown away, and it
      // is dropped CLOSE_HANDSHAKE_MS later whether it answers or not.
      const close = ws.close.bind(ws);
      ws.close = ((...args: Parameters<WebSocket['close']>) => {
        close(...args);
        ws.pause();
      }) as WebSocket['close'];
      const state: SocketState = { socket: ws, request, payer: address, address, lastCost: 1, lastVerdict: Promise.resolve(null) };
      // Before graphql-ws's own listener, which parses the message and, for every type, calls its
      // handler above before awaiting anything: each message is charged to its payer here (1 token
      // plus 1 per 64 KiB), and the handler of its type reads the verdict synchronously.
      ws.on('message', (data: RawData) => {
        state.lastCost = bodyCost(messageBytes(data));
        state.lastVerdict = limiter.take(state.payer, state.lastCost);
      });
      ws.once('close', () => {
        if (state.principal === undefined) caps.releasePending(address);
        else caps.releaseUser(state.principal.sub);
      });
      graphqlWs.accept(ws, state);
      // graphql-ws would report an oversized message as an internal error; `ws` has already
      // closed that socket with 1009 (Message Too Big), the client's doing.
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
  return {
    dispose: async () => {
      opts.httpServer.off('upgrade', onUpgrade);
      await graphqlWs.dispose();
    },
  };
}
