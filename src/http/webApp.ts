import { existsSync } from 'node:fs';
import { findPackageJSON } from 'node:module';
import path from 'node:path';
import express, { type Request, type Response } from 'express';

/** The app's pages: any GET of these paths answers index.html; the router in web/src/App.tsx draws them. */
const APP_ROUTES = ['/', '/executions/:id', '/jobs/:id', '/submit'];

/** Where `npm run build` puts the app (web/vite.config.ts): dist/web under the package root. */
export function defaultWebDir(): string {
  const manifest = findPackageJSON(import.meta.url);
  if (manifest === undefined) throw new Error('Kiln cannot find its own package.json');
  return path.join(path.dirname(manifest), 'dist', 'web');
}

/**
 * The app's pages get a strict policy: scripts and styles only from files of this origin (the
 * build inlines none), and connections to this origin over HTTP and graphql-ws only.
 */
function pageHeaders(req: Request, res: Response): void {
  const host = req.headers.host ?? '';
  res.set({
    'content-security-policy': [
      "default-src 'self'",
      "script-src 'self'",
      "style-src 'self'",
      "img-src 'self' data:",
      `connect-src 'self' ws://${host} wss://${host}`,
      "object-src 'none'",
      "base-uri 'none'",
      "form-action 'self'",
      "frame-ancestors 'none'",
    ].join('; '),
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'same-origin',
    'cache-control': 'no-store',
  });
}

/**
 * Serves the built web app (docs/design.md#web-app): index.html for the app's routes (never
 * cached, so a new build is picked up at once), the hashed files under /assets cached for a year
 * (their names change with their content), and the favicon for an hour.
 * Any other path falls through to the API's routes and their 404s: an unknown URL is not a page.
 */
export function webAppRouter(dir: string, log: (message: string) => void): express.Router {
  const router = express.Router();
  const index = path.join(dir, 'index.html');
  if (!existsSync(index)) {
    log(`the web app is not built (${index} is missing); run npm run build`);
    router.get(APP_ROUTES, (_req, res) => void res.status(503).type('text/plain').send('The web app is not built: run npm run build.\n'));
    return router;
  }
  router.get(APP_ROUTES, (req, res) => {
    pageHeaders(req, res);
    res.sendFile(index);
  });
  router.use(
    '/assets',
    express.static(path.join(dir, 'assets'), {
      immutable: true,
      maxAge: '365d',
      index: false,
      fallthrough: false,
      setHeaders: (res) => res.setHeader('x-content-type-options', 'nosniff'),
    }),
  );
  // The public files by name only: a static handler over the folder would also answer index.html
  // itself, without the page's headers.
  router.get('/favicon.svg', (_req, res) => {
    res.set('cache-control', 'public, max-age=3600');
    res.sendFile(path.join(dir, 'favicon.svg'));
  });
  return router;
}
