import { timingSafeEqual } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { parseCookie, stringifySetCookie } from 'cookie';
import { parse as parseGraphql } from 'graphql';
import type pg from 'pg';
import { findSession, type WebSession } from '../auth/sessionStore.js';
import { bearerToken } from '../auth/token.js';
import type { Principal, TokenVerifier } from '../auth/types.js';
import type { WebSettings } from '../config/web.js';
import { ForbiddenError, UnauthenticatedError } from '../errors.js';

/** The session cookie: httpOnly, SameSite=Lax; holds only the session's random id. */
export const SESSION_COOKIE = 'kiln_session';
/** The page-readable cookie holding the session's CSRF token (SameSite=Strict). */
export const CSRF_COOKIE = 'kiln_csrf';
/** The header a session's writes must carry, equal to the `kiln_csrf` cookie. */
export const CSRF_HEADER = 'x-csrf-token';

/** Who a request is, and by which credential. */
export interface Identity {
  principal: Principal;
  /** The session when the request was authenticated by its cookie; null for a bearer token. */
  session: WebSession | null;
}

/**
 * Authenticates HTTP requests and socket upgrades by a bearer token or, when there is none, by
 * the session cookie (docs/design.md#web-sessions). A bearer header takes precedence: a bad one
 * is refused, never passed over for a cookie. The answer is remembered per request object, so the
 * rate limiter and the route cost one lookup together.
 */
export class RequestAuth {
  private readonly known = new WeakMap<object, Promise<Identity | null>>();
  /** Sessions ended in this process, by the hex of their id's hash: their sockets close. */
  private readonly ended = new EventEmitter().setMaxListeners(0);

  constructor(
    readonly verifier: TokenVerifier,
    private readonly pool: pg.Pool,
    readonly web: Readonly<WebSettings>,
  ) {}

  /** The request's identity, null when it carries no credential; throws UnauthenticatedError for a bad one. */
  identify(req: IncomingMessage): Promise<Identity | null> {
    let answer = this.known.get(req);
    if (answer === undefined) {
      answer = this.lookUp(req);
      this.known.set(req, answer);
    }
    return answer;
  }

  private async lookUp(req: IncomingMessage): Promise<Identity | null> {
    if (req.headers.authorization !== undefined) {
      const token = bearerToken(req.headers.authorization);
      if (token === null) throw new UnauthenticatedError('malformed Authorization header: expected "Bearer <token>"');
      return { principal: await this.verifier.verify(token), session: null };
    }
    const id = sessionIdOf(req);
    if (id === null) return null;
    const session = await findSession(this.pool, id, this.web);
    if (session === null) throw new UnauthenticatedError('session expired or signed out');
    return { principal: principalOf(session), session };
  }

  /**
   * The identity a route acts for. A request on the session cookie that writes (`writes`) must
   * carry the session's CSRF token in `x-csrf-token` and, when it names an Origin, come from
   * Kiln's own: else ForbiddenError (403).
   */
  async require(req: IncomingMessage, writes: boolean): Promise<Identity> {
    const identity = await this.identify(req);
    if (identity === null) throw new UnauthenticatedError('missing bearer token or session cookie');
    if (identity.session !== null && writes) this.checkWrite(req, identity.session);
    return identity;
  }

  private checkWrite(req: IncomingMessage, session: WebSession): void {
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== this.ownOrigin(req)) throw new ForbiddenError(`cross-origin request from ${origin} refused`);
    const sent = req.headers[CSRF_HEADER];
    if (typeof sent !== 'string' || !sameSecret(sent, session.csrfToken)) {
      throw new ForbiddenError(`missing or wrong ${CSRF_HEADER} header: send the value of the ${CSRF_COOKIE} cookie`);
    }
  }

  /** Calls `onEnd` when this process ends the session (logout); returns the unsubscribe. */
  onSessionEnd(idHashHex: string, onEnd: () => void): () => void {
    this.ended.once(idHashHex, onEnd);
    return () => this.ended.off(idHashHex, onEnd);
  }

  /** Tells the session's open sockets that it ended. */
  sessionEnded(idHash: Buffer): void {
    this.ended.emit(idHash.toString('hex'));
  }

  /** Kiln's origin as browsers see it: KILN_PUBLIC_URL's, else that of the request's Host. */
  ownOrigin(req: IncomingMessage): string | null {
    if (this.web.publicUrl !== null) return this.web.publicUrl;
    const host = req.headers.host;
    if (typeof host !== 'string' || host.length === 0) return null;
    return `${isHttps(req) ? 'https' : 'http'}://${host}`;
  }

  /** True when a socket upgrade on the session cookie may proceed: its Origin is Kiln's own. */
  sameOrigin(req: IncomingMessage): boolean {
    const origin = req.headers.origin;
    return typeof origin === 'string' && origin === this.ownOrigin(req);
  }

  /** Sets both cookies of a new or refreshed session on `res`. */
  setCookies(req: IncomingMessage, res: ServerResponse, id: string | null, session: WebSession): void {
    const maxAge = Math.max(0, Math.floor((session.expiresAt.getTime() - Date.now()) / 1000));
    const secure = this.secureFor(req);
    const cookies = [stringifySetCookie({ name: CSRF_COOKIE, value: session.csrfToken, path: '/', sameSite: 'strict', secure, maxAge })];
    if (id !== null) cookies.push(stringifySetCookie({ name: SESSION_COOKIE, value: id, path: '/', httpOnly: true, sameSite: 'lax', secure, maxAge }));
    appendSetCookie(res, cookies);
  }

  /** Clears both cookies (logout, or a session that ended). */
  clearCookies(req: IncomingMessage, res: ServerResponse): void {
    const secure = this.secureFor(req);
    appendSetCookie(res, [
      stringifySetCookie({ name: SESSION_COOKIE, value: '', path: '/', httpOnly: true, sameSite: 'lax', secure, maxAge: 0 }),
      stringifySetCookie({ name: CSRF_COOKIE, value: '', path: '/', sameSite: 'strict', secure, maxAge: 0 }),
    ]);
  }

  /** Whether cookies for this request get `Secure`: it came over https, or Kiln's public URL is https. */
  secureFor(req: IncomingMessage): boolean {
    return isHttps(req) || (this.web.publicUrl?.startsWith('https:') ?? false);
  }
}

/** The session cookie's value, or null. */
export function sessionIdOf(req: IncomingMessage): string | null {
  const header = req.headers.cookie;
  if (typeof header !== 'string' || header.length === 0) return null;
  const id = parseCookie(header)[SESSION_COOKIE];
  return typeof id === 'string' && id.length > 0 ? id : null;
}

/** A session's principal: its owner, until its absolute end. */
export function principalOf(session: WebSession): Principal {
  return { sub: session.owner, exp: Math.floor(session.expiresAt.getTime() / 1000), name: session.name };
}

/**
 * Whether a GraphQL request writes: anything but GET/HEAD, or a GET whose query holds a mutation
 * (Apollo refuses those too; the session's rule does not rely on it). An unparsable query writes
 * nothing: it is refused before any resolver runs.
 */
export function graphqlWrites(req: IncomingMessage & { query?: unknown }): boolean {
  if (req.method !== 'GET' && req.method !== 'HEAD') return true;
  const query = (req.query as Record<string, unknown> | undefined)?.query;
  if (typeof query !== 'string') return false;
  try {
    return parseGraphql(query, { maxTokens: 10_000 }).definitions.some((d) => d.kind === 'OperationDefinition' && d.operation !== 'query');
  } catch {
    return false;
  }
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function isHttps(req: IncomingMessage): boolean {
  return (req.socket as TLSSocket).encrypted === true;
}

function appendSetCookie(res: ServerResponse, cookies: string[]): void {
  const prior = res.getHeader('set-cookie');
  const list = prior === undefined ? [] : Array.isArray(prior) ? prior : [String(prior)];
  res.setHeader('set-cookie', [...list, ...cookies]);
}
