import express, { type NextFunction, type Request, type Response } from 'express';
import { createSession, endSession } from '../auth/sessionStore.js';
import { bearerToken } from '../auth/token.js';
import { UnauthenticatedError } from '../errors.js';
import type { Deps } from '../services/deps.js';
import { type RequestAuth, sessionIdOf } from './requestAuth.js';

type Handler = (req: Request, res: Response) => Promise<void>;

/**
 * `/api/v1/session` and `/api/v1/logout` (docs/design.md#web-sessions). Mounted before the REST
 * routes' own authentication: each route here says which credential it takes.
 */
export function sessionRouter(deps: Deps, auth: RequestAuth): express.Router {
  const router = express.Router();
  const wrap = (fn: Handler) => (req: Request, res: Response, next: NextFunction) => void fn(req, res).catch(next);
  const noStore = (_req: Request, res: Response, next: NextFunction) => {
    res.setHeader('cache-control', 'no-store');
    next();
  };
  router.use(['/session', '/logout'], noStore);

  // Who the page is signed in as; the CSRF cookie is set again, in case the page lost it.
  router.get(
    '/session',
    wrap(async (req, res) => {
      const { principal, session } = await auth.require(req, false);
      if (session !== null) auth.setCookies(req, res, null, session);
      res.json({ user: { id: principal.sub, name: principal.name ?? principal.sub } });
    }),
  );

  // A bearer token (any valid one) becomes a browser session: both cookies, 204.
  router.post(
    '/session',
    wrap(async (req, res) => {
      const token = bearerToken(req.headers.authorization);
      if (token === null) throw new UnauthenticatedError('POST /api/v1/session takes Authorization: Bearer <token>');
      const principal = await auth.verifier.verify(token);
      const { id, session } = await createSession(deps.pool, { owner: principal.sub, name: principal.name ?? principal.sub }, deps.config.web);
      auth.setCookies(req, res, id, session);
      res.status(204).end();
    }),
  );

  // Ends the cookie's session. With a live session it is a write like any other (CSRF token and
  // Origin), so that no other site can sign a user out; without one it only clears the cookies.
  router.post(
    '/logout',
    wrap(async (req, res) => {
      const id = sessionIdOf(req);
      if (id !== null && req.headers.authorization === undefined) {
        const identity = await auth.require(req, true).catch((err: unknown) => {
          if (err instanceof UnauthenticatedError) return null;
          throw err;
        });
        if (identity?.session) {
          await endSession(deps.pool, id);
          auth.sessionEnded(identity.session.idHash);
        }
      }
      auth.clearCookies(req, res);
      res.status(204).end();
    }),
  );
  return router;
}
