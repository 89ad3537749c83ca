import express, { type NextFunction, type Request, type Response } from 'express';
import { parseCookie, stringifySetCookie } from 'cookie';
import type { OidcBrowserClient } from '../auth/oidcBrowser.js';
import { createSession } from '../auth/sessionStore.js';
import { redeemSignInCode, saveLoginFlow, takeLoginFlow } from '../auth/signInStore.js';
import type { Principal } from '../auth/types.js';
import { DomainError } from '../errors.js';
import type { Deps } from '../services/deps.js';
import type { RequestAuth } from './requestAuth.js';
import { htmlPage } from './signInPage.js';

/** Binds a flow to the browser that started it (login CSRF): the callback's state must equal it. */
const FLOW_COOKIE = 'kiln_login';
const FLOW_PATH = '/api/v1/callback';
/** How long a browser may spend at the provider's login page. */
const FLOW_TTL_MS = 10 * 60_000;

/** How the browser signs in: local mode's one-time links, or the identity provider. */
export type SignIn = { mode: 'local' } | { mode: 'oidc'; client: OidcBrowserClient } | { mode: 'none'; why: string };

/**
 * A path on Kiln's own origin to return to after sign-in, or `/`: only `/x...` paths, never
 * `//host` or `/\host` (which browsers read as another host) nor absolute URLs. No open redirect.
 */
export function safeReturnTo(raw: unknown): string {
  if (typeof raw !== 'string' || !raw.startsWith('/') || raw.startsWith('//') || raw.startsWith('/\\') || raw.length > 2000) return '/';
  try {
    const base = 'http://kiln.invalid';
    const url = new URL(raw, base);
    return url.origin === base ? url.pathname + url.search + url.hash : '/';
  } catch {
    return '/';
  }
}

/** `GET /api/v1/login` and `GET /api/v1/callback` (docs/design.md#web-sessions). */
export function signInRouter(deps: Deps, auth: RequestAuth, signIn: SignIn): express.Router {
  const router = express.Router();
  const wrap = (fn: (req: Request, res: Response) => Promise<void>) => (req: Request, res: Response, next: NextFunction) => void fn(req, res).catch(next);
  const page = (res: Response, status: number, title: string, paragraphs: string[]) => {
    res.status(status).setHeader('cache-control', 'no-store').type('html').send(htmlPage(title, paragraphs));
  };
  const signedIn = async (req: Request, res: Response, principal: Principal, returnTo: string) => {
    const { id, session } = await createSession(deps.pool, { owner: principal.sub, name: principal.name ?? principal.sub }, deps.config.web);
    auth.setCookies(req, res, id, session);
    res.setHeader('cache-control', 'no-store');
    res.redirect(303, returnTo);
  };
  const callbackUrl = (req: Request): string | null => {
    const origin = auth.ownOrigin(req);
    return origin === null ? null : `${origin}${FLOW_PATH}`;
  };

  router.get(
    '/login',
    wrap(async (req, res) => {
      const code = req.query.code;
      if (code !== undefined) {
        if (signIn.mode !== 'local' || typeof code !== 'string') return page(res, 400, 'Sign-in link not valid', ['This Kiln does not sign in with one-time links.']);
        const redeemed = await redeemSignInCode(deps.pool, code);
        if ('owner' in redeemed) return signedIn(req, res, { sub: redeemed.owner, exp: 0 }, '/');
        const why = { used: 'This sign-in link was already used. Each link signs in once.', expired: 'This sign-in link has expired.', unknown: 'This sign-in link is not one this Kiln made.' }[redeemed.refused];
        return page(res, redeemed.refused === 'unknown' ? 400 : 410, 'Sign-in link not valid', [why, 'Restart `kiln start` for a new link, or sign in with a token: `kiln token <user>`, then POST it to /api/v1/session.']);
      }
      if (signIn.mode === 'local') {
        return page(res, 200, 'Sign in to Kiln', ['This Kiln runs in local mode: open the one-time sign-in link that `kiln start` printed in its terminal.', 'Scripts keep using tokens from `kiln token <user>`.']);
      }
      if (signIn.mode === 'none') return page(res, 501, 'Browser sign-in is not configured', [signIn.why]);
      const redirectUri = callbackUrl(req);
      if (redirectUri === null) return page(res, 400, 'Sign-in failed', ['The request named no Host; set KILN_PUBLIC_URL.']);
      const flow = await signIn.client.start(redirectUri);
      await saveLoginFlow(deps.pool, flow.state, { codeVerifier: flow.codeVerifier, nonce: flow.nonce, returnTo: safeReturnTo(req.query.return_to) }, FLOW_TTL_MS);
      res.append('set-cookie', flowCookie(flow.state, auth.secureFor(req), FLOW_TTL_MS / 1000));
      res.setHeader('cache-control', 'no-store');
      res.redirect(302, flow.url.href);
    }),
  );

  router.get(
    '/callback',
    wrap(async (req, res) => {
      if (signIn.mode !== 'oidc') return page(res, 404, 'No sign-in in progress', ['This Kiln does not sign in through an identity provider.']);
      const again = 'Start again at /api/v1/login.';
      const state = typeof req.query.state === 'string' ? req.query.state : '';
      const bound = parseCookie(req.headers.cookie ?? '')[FLOW_COOKIE];
      res.append('set-cookie', flowCookie('', auth.secureFor(req), 0));
      // The state must be the one this browser was sent off with, or a page elsewhere could
      // sign the user in as someone else (login CSRF).
      if (state === '' || bound !== state) return page(res, 400, 'Sign-in failed', ['This sign-in was not started in this browser, or it was already finished.', again]);
      const flow = await takeLoginFlow(deps.pool, state);
      if (flow === null) return page(res, 400, 'Sign-in failed', ['This sign-in expired or was already finished.', again]);
      if (typeof req.query.error === 'string') {
        const detail = typeof req.query.error_description === 'string' ? `: ${req.query.error_description}` : '';
        return page(res, 401, 'Sign-in refused', [`The identity provider said ${req.query.error}${detail}.`, again]);
      }
      const redirectUri = callbackUrl(req)!;
      let principal: Principal;
      try {
        principal = await signIn.client.finish(new URL(req.originalUrl, redirectUri), { state, codeVerifier: flow.codeVerifier, nonce: flow.nonce }, redirectUri);
      } catch (err) {
        if (!(err instanceof DomainError)) throw err;
        return page(res, 401, 'Sign-in failed', [err.message, again]);
      }
      await signedIn(req, res, principal, flow.returnTo);
    }),
  );
  return router;
}

function flowCookie(state: string, secure: boolean, maxAge: number): string {
  return stringifySetCookie({ name: FLOW_COOKIE, value: state, path: FLOW_PATH, httpOnly: true, sameSite: 'lax', secure, maxAge });
}
