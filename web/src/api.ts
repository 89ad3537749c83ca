import { KilnApiError, KilnClient } from '@kiln/sdk';
import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { useCallback, useEffect, useRef, useState } from 'react';

/** A cookie of this page's origin (the CSRF token is readable by design; the session is not). */
export function cookie(name: string): string | undefined {
  for (const part of document.cookie.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return decodeURIComponent(part.slice(eq + 1).trim());
  }
  return undefined;
}

/**
 * The app's one client: same origin, no token (the browser sends the session cookie on HTTP and
 * on the graphql-ws upgrade), the CSRF token read from its cookie on every request.
 */
export const kiln = new KilnClient({ url: location.origin, csrfToken: () => cookie('kiln_csrf') });

export interface SessionUser {
  id: string;
  name: string;
}

export type SessionState = { state: 'loading' } | { state: 'signed-out' } | { state: 'signed-in'; user: SessionUser } | { state: 'error'; message: string };

/** `GET /api/v1/session`: 200 with the user, or 401 when no session cookie is valid. */
export async function fetchSession(): Promise<SessionState> {
  const res = await fetch('/api/v1/session', { credentials: 'same-origin', headers: { accept: 'application/json' } });
  if (res.status === 401) return { state: 'signed-out' };
  if (!res.ok) return { state: 'error', message: `the server answered ${res.status}` };
  const body = (await res.json()) as { user: SessionUser };
  return { state: 'signed-in', user: body.user };
}

/** Ends the session (`POST /api/v1/logout`, with the CSRF header every cookie-borne POST needs). */
export async function signOut(): Promise<void> {
  const csrf = cookie('kiln_csrf');
  await fetch('/api/v1/logout', { method: 'POST', credentials: 'same-origin', headers: csrf === undefined ? {} : { 'x-csrf-token': csrf } });
  await kiln.close();
}

export function errorText(err: unknown): string {
  if (err instanceof KilnApiError) return `${err.message} (${err.code})`;
  return err instanceof Error ? err.message : String(err);
}

/** A button's action: `busy` while one runs (disable the buttons), its error in words after. */
export function useAction(): { busy: boolean; error: string | undefined; act(what: () => Promise<void>): Promise<void> } {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const act = async (what: () => Promise<void>) => {
    setBusy(true);
    setError(undefined);
    try {
      await what();
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, act };
}

export interface QueryState<R> {
  data: R | undefined;
  error: string | undefined;
  loading: boolean;
  /** Runs the query again; the previous data stays shown until the new answer arrives. */
  refetch(): Promise<void>;
}

/**
 * Runs a query when mounted and whenever `variables` change (compared by JSON). Answers that
 * arrive after a newer request started are dropped, so a slow refetch never overwrites a fresh one.
 */
export function useQuery<R, V extends Record<string, unknown>>(document: TypedDocumentNode<R, V>, variables: V): QueryState<R> {
  const [data, setData] = useState<R>();
  const [error, setError] = useState<string>();
  const [loading, setLoading] = useState(true);
  const key = JSON.stringify(variables);
  const generation = useRef(0);
  const refetch = useCallback(async () => {
    const mine = ++generation.current;
    setLoading(true);
    try {
      const result = await kiln.request(document, JSON.parse(key) as V);
      if (mine !== generation.current) return;
      setData(result);
      setError(undefined);
    } catch (err) {
      if (mine === generation.current) setError(errorText(err));
    } finally {
      if (mine === generation.current) setLoading(false);
    }
  }, [document, key]);
  useEffect(() => {
    void refetch();
    return () => {
      generation.current++;
    };
  }, [refetch]);
  return { data, error, loading, refetch };
}

/**
 * Subscribes while mounted and calls `onEvent` for each event; `enabled` false unsubscribes.
 * The socket is shared by every subscription of the page (graphql-ws multiplexes them). When the
 * socket ends (a server restart, a network change) it resubscribes after a pause and calls
 * `onResubscribe`, so the caller can refetch what it may have missed meanwhile.
 */
export function useSubscription<R, V extends Record<string, unknown>>(
  document: TypedDocumentNode<R, V>,
  variables: V,
  onEvent: (data: R) => void,
  opts: { enabled?: boolean; onResubscribe?: () => void } = {},
): void {
  const handler = useRef(onEvent);
  handler.current = onEvent;
  const resubscribed = useRef(opts.onResubscribe);
  resubscribed.current = opts.onResubscribe;
  const key = JSON.stringify(variables);
  const enabled = opts.enabled ?? true;
  useEffect(() => {
    if (!enabled) return;
    let stopped = false;
    let events: AsyncGenerator<R> | undefined;
    void (async () => {
      for (let attempt = 0; !stopped; attempt++) {
        if (attempt > 0) {
          await new Promise((r) => setTimeout(r, Math.min(1000 * 2 ** attempt, 30_000)));
          if (stopped) return;
          resubscribed.current?.();
        }
        try {
          events = kiln.subscribe(document, JSON.parse(key) as V);
          for await (const data of events) {
            attempt = 0;
            handler.current(data);
          }
          return; // the server completed the subscription
        } catch (err) {
          if (!stopped) console.warn('subscription ended:', errorText(err));
        }
      }
    })();
    return () => {
      stopped = true;
      void events?.return(undefined);
    };
  }, [document, key, enabled]);
}
