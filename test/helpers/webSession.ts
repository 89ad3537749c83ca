import { parseSetCookie } from 'cookie';
import type { BrowserContext } from 'playwright-core';
import type { TestKiln } from './kiln.js';

/**
 * Signs a browser context in as `user`: `POST /api/v1/session` with the user's bearer token
 * through the context's own request client, which stores the answer's cookies in the context
 * (docs/design.md#web-sessions). Pages of the context are then signed in.
 */
export async function signIn(context: BrowserContext, kiln: TestKiln, user: string): Promise<void> {
  const res = await context.request.post(`${kiln.url}/api/v1/session`, { headers: { authorization: `Bearer ${await kiln.token(user)}` } });
  if (res.status() !== 204) throw new Error(`POST /api/v1/session answered ${res.status()}: ${await res.text()}`);
}

/** A session made over plain HTTP: its `Cookie` header, its CSRF token and the raw id. */
export interface HttpSession {
  cookie: string;
  csrf: string;
  id: string;
  /** The Set-Cookie lines of the answer, for checking their attributes. */
  setCookie: string[];
}

/** Signs `user` in over plain HTTP (for tests without a browser). */
export async function httpSession(kiln: TestKiln, user: string): Promise<HttpSession> {
  const res = await fetch(`${kiln.url}/api/v1/session`, { method: 'POST', headers: { authorization: `Bearer ${await kiln.token(user)}` } });
  if (res.status !== 204) throw new Error(`POST /api/v1/session answered ${res.status}: ${await res.text()}`);
  const setCookie = res.headers.getSetCookie();
  const values = Object.fromEntries(setCookie.map((line) => parseSetCookie(line)).map((c) => [c.name, c.value]));
  const id = values.kiln_session;
  const csrf = values.kiln_csrf;
  if (!id || !csrf) throw new Error(`POST /api/v1/session set no session: ${setCookie.join(' | ')}`);
  return { cookie: `kiln_session=${id}; kiln_csrf=${csrf}`, csrf, id, setCookie };
}
