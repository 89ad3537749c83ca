import { findPackageJSON } from 'node:module';
import path from 'node:path';
import express, { type Request, type Response } from 'express';
import { PLAYGROUND_CSS, PLAYGROUND_JS, playgroundHtml } from './playgroundPage.js';

const ASSETS = '/playground/assets';

/** Files served from installed packages; the names are the only ones the asset route knows. */
const PACKAGE_FILES: Record<string, { pkg: string; file: string; type: string }> = {
  'react.js': { pkg: 'react', file: 'umd/react.production.min.js', type: 'text/javascript' },
  'react-dom.js': { pkg: 'react-dom', file: 'umd/react-dom.production.min.js', type: 'text/javascript' },
  'graphiql.js': { pkg: 'graphiql', file: 'graphiql.min.js', type: 'text/javascript' },
  'graphiql.css': { pkg: 'graphiql', file: 'graphiql.min.css', type: 'text/css' },
  'graphql-ws.js': { pkg: 'graphql-ws', file: 'umd/graphql-ws.min.js', type: 'text/javascript' },
};

/** The packages export no subpaths for these files: find each package's folder instead. */
function packageFile(pkg: string, file: string): string {
  const manifest = findPackageJSON(pkg, import.meta.url);
  if (manifest === undefined) throw new Error(`the playground needs the package "${pkg}"; run npm install`);
  return path.join(path.dirname(manifest), file);
}

function securityHeaders(req: Request, res: Response): void {
  const host = req.headers.host ?? '';
  res.set({
    'content-security-policy': [
      "default-src 'none'",
      "script-src 'self'",
      // GraphiQL (React, CodeMirror) sets inline styles.
      "style-src 'self' 'unsafe-inline'",
      "img-src 'self' data:",
      "font-src 'self' data:",
      `connect-src 'self' ws://${host} wss://${host}`,
      "base-uri 'none'",
      "form-action 'none'",
      "frame-ancestors 'none'",
    ].join('; '),
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
  });
}

/**
 * The GraphQL playground (GraphiQL), served by Kiln itself: `GET /playground`, and `GET /graphql`
 * when a browser asks for HTML. Assets come from the installed packages; the page's own script
 * and style are in playgroundPage.ts.
 */
export function playgroundRouter(): express.Router {
  const files = new Map(Object.entries(PACKAGE_FILES).map(([name, f]) => [name, { path: packageFile(f.pkg, f.file), type: f.type }]));
  const router = express.Router();
  const page = (req: Request, res: Response) => {
    securityHeaders(req, res);
    res.type('html').set('cache-control', 'no-store').send(playgroundHtml(ASSETS));
  };
  router.get('/playground', page);
  router.get('/graphql', (req, res, next) => {
    // Browsers navigate with Accept: text/html first; API clients (and curl's */*) get GraphQL.
    if (req.accepts(['application/json', 'application/graphql-response+json', 'text/html']) !== 'text/html') return next();
    page(req, res);
  });
  router.get(`${ASSETS}/:name`, (req, res) => {
    const name = req.params.name;
    securityHeaders(req, res);
    res.set('cache-control', 'public, max-age=3600');
    if (name === 'kiln-playground.js') return void res.type('text/javascript').send(PLAYGROUND_JS);
    if (name === 'kiln-playground.css') return void res.type('text/css').send(PLAYGROUND_CSS);
    const file = files.get(name);
    if (file === undefined) return void res.status(404).type('text/plain').send('not found');
    res.type(file.type).sendFile(file.path);
  });
  return router;
}
