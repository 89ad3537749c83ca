import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { print, type DocumentNode } from 'graphql';
import { createClient, type Client } from 'graphql-ws';

/** How to reach a Kiln server. */
export interface KilnClientOptions {
  /** The server's base URL, e.g. `http://127.0.0.1:4000` (`/graphql` is appended when absent). */
  url: string;
  /**
   * A bearer token (without the `Bearer ` prefix). Absent in a browser signed in by the session
   * cookie, which the browser sends itself (same origin).
   */
  token?: string;
  /**
   * The session's CSRF token, sent as `x-csrf-token` on every HTTP request: a cookie session's
   * mutations are refused without it. Read on each request.
   */
  csrfToken?: () => string | undefined;
  /** The WebSocket class for subscriptions; default the platform's (browsers, Node >= 22). */
  webSocketImpl?: unknown;
  /** Gives up on an HTTP request after this long; default 30 s. */
  timeoutMs?: number;
}

/** One diagnostic of an invalid job file, as `extensions.diagnostics` carries it. */
export interface ApiDiagnostic {
  line: number;
  column: number;
  path: string;
  message: string;
  severity: string;
}

/** A GraphQL error answered by the server, with its `extensions.code`. */
export class KilnApiError extends Error {
  constructor(
    message: string,
    /** `extensions.code`: BAD_USER_INPUT, UNAUTHENTICATED, NOT_FOUND, CONFLICT, GRAPHQL_VALIDATION_FAILED, ... */
    readonly code: string,
    /** Diagnostics of an invalid job file (BAD_USER_INPUT), else empty. */
    readonly diagnostics: ApiDiagnostic[] = [],
    /** The HTTP status, for errors answered over HTTP. */
    readonly status: number | null = null,
  ) {
    super(message);
    this.name = 'KilnApiError';
  }
}

/** The server closed the subscription socket, e.g. 4403 for a refused or expired token. */
export class KilnSocketClosedError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
  ) {
    super(`the server closed the socket: ${code}${reason ? ` ${reason}` : ''}`);
    this.name = 'KilnSocketClosedError';
  }
}

interface RawError {
  message: string;
  extensions?: { code?: string; diagnostics?: ApiDiagnostic[] };
}

function apiError(errors: readonly RawError[], status: number | null = null): KilnApiError {
  const first = errors[0] ?? { message: 'unknown error' };
  return new KilnApiError(first.message, first.extensions?.code ?? 'INTERNAL_SERVER_ERROR', first.extensions?.diagnostics ?? [], status);
}

function isCloseEvent(err: unknown): err is { code: number; reason: string } {
  return typeof err === 'object' && err !== null && typeof (err as { code?: unknown }).code === 'number' && 'reason' in err;
}

const printed = new WeakMap<DocumentNode, string>();
function source(document: DocumentNode): string {
  let s = printed.get(document);
  if (s === undefined) printed.set(document, (s = print(document)));
  return s;
}

/**
 * Kiln's typed client. Give it a document from `generated.ts` and its variables; the result is
 * typed by the document. Queries and mutations go over HTTP; subscriptions over graphql-ws on
 * the same path, with the token in `connectionParams.authorization`. Errors are thrown as
 * {@link KilnApiError} (with the server's code) or {@link KilnSocketClosedError}.
 */
export class KilnClient {
  readonly endpoint: string;
  private socket: Client | null = null;

  constructor(private readonly opts: KilnClientOptions) {
    const base = opts.url.replace(/\/+$/, '');
    this.endpoint = base.endsWith('/graphql') ? base : `${base}/graphql`;
  }

  /** Runs a query or mutation; resolves with its data or throws its first error. */
  async request<R, V extends Record<string, unknown>>(document: TypedDocumentNode<R, V>, variables?: V): Promise<R> {
    const res = await fetch(this.endpoint, {
      method: 'POST',
      headers: this.headers(),
      credentials: 'same-origin',
      body: JSON.stringify({ query: source(document), variables: variables ?? {} }),
      signal: AbortSignal.timeout(this.opts.timeoutMs ?? 30_000),
    });
    let body: { data?: R | null; errors?: RawError[] };
    try {
      body = (await res.json()) as typeof body;
    } catch {
      throw new KilnApiError(`${this.endpoint} answered HTTP ${res.status} without a GraphQL response`, 'BAD_RESPONSE', [], res.status);
    }
    if (body.errors !== undefined && body.errors.length > 0) throw apiError(body.errors, res.status);
    if (body.data === undefined || body.data === null) throw new KilnApiError('the response has no data', 'BAD_RESPONSE', [], res.status);
    return body.data;
  }

  /**
   * Runs a subscription; yields each event's data until the server completes it. Breaking out
   * of the loop unsubscribes.
   */
  async *subscribe<R, V extends Record<string, unknown>>(document: TypedDocumentNode<R, V>, variables?: V): AsyncGenerator<R> {
    const events = this.ws().iterate<R>({ query: source(document), variables: variables ?? {} });
    try {
      for await (const result of events) {
        if (result.errors !== undefined && result.errors.length > 0) throw apiError(result.errors as RawError[]);
        if (result.data !== undefined && result.data !== null) yield result.data;
      }
    } catch (err) {
      if (err instanceof KilnApiError) throw err;
      if (Array.isArray(err)) throw apiError(err as RawError[]);
      if (isCloseEvent(err)) throw new KilnSocketClosedError(err.code, err.reason);
      throw err;
    } finally {
      await events.return?.(undefined);
    }
  }

  /** Closes the subscription socket, if one is open. */
  async close(): Promise<void> {
    const socket = this.socket;
    this.socket = null;
    await socket?.dispose();
  }

  private headers(): Record<string, string> {
    const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
    if (this.opts.token !== undefined) headers.authorization = `Bearer ${this.opts.token}`;
    const csrf = this.opts.csrfToken?.();
    if (csrf !== undefined) headers['x-csrf-token'] = csrf;
    return headers;
  }

  private ws(): Client {
    const token = this.opts.token;
    this.socket ??= createClient({
      url: this.endpoint.replace(/^http/, 'ws'),
      webSocketImpl: this.opts.webSocketImpl ?? globalThis.WebSocket,
      // Without a token the socket rides the session cookie the browser sends on the upgrade.
      connectionParams: token === undefined ? {} : { authorization: `Bearer ${token}` },
      lazy: true,
      // Reconnecting would re-send the same afterSeq and repeat lines: callers resume themselves.
      retryAttempts: 0,
    });
    return this.socket;
  }
}
