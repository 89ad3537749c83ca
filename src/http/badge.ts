import { createHash } from 'node:crypto';
import express, { type NextFunction, type Request, type Response } from 'express';
import { badgeOf, type BadgeState, type BadgeWord } from '../services/badges.js';
import type { Deps } from '../services/deps.js';

const COLORS: Readonly<Record<BadgeWord, string>> = {
  passing: '#2e7d32',
  failing: '#c62828',
  running: '#1565c0',
  stale: '#9e9e9e',
  'no status': '#9e9e9e',
};

/** One body for every id without a badge: unknown, malformed or not opted in look the same. */
const NO_BADGE = { error: 'no such badge', code: 'NOT_FOUND' };

const ESCAPES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

/** Rough width of `text` in 11px Verdana: enough for a badge, no font metrics needed. */
const widthOf = (text: string): number => 10 + Math.ceil(text.length * 6.5);

/** The badge as a flat two-part SVG, label on the left and the word on the right. */
export function badgeSvg({ label, word }: BadgeState): string {
  const [l, w] = [widthOf(label), widthOf(word)];
  const [text, value] = [escapeXml(label), escapeXml(word)];
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${l + w}" height="20" role="img" aria-label="${text}: ${value}">`,
    `<title>${text}: ${value}</title>`,
    `<rect width="${l}" height="20" fill="#555"/><rect x="${l}" width="${w}" height="20" fill="${COLORS[word]}"/>`,
    `<g fill="#fff" text-anchor="middle" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11">`,
    `<text x="${l / 2}" y="14">${text}</text><text x="${l + w / 2}" y="14">${value}</text>`,
    `</g></svg>\n`,
  ].join('');
}

/** Whether an If-None-Match list names `etag` (weak or strong) or is `*`. */
function matches(header: string | undefined, etag: string): boolean {
  return header?.split(',').some((tag) => ['*', etag, `W/${etag}`].includes(tag.trim())) === true;
}

/**
 * `GET /api/v1/badges/:job_id.svg` (docs/design.md#badges): public, like every CI's badges, so it
 * is mounted before the REST routes' authentication; the rate limiter in front of `/api/v1`
 * counts its callers by address. Never cached stale (`no-cache`), but revalidated by ETag.
 */
export function badgeRouter(deps: Deps): express.Router {
  const router = express.Router();
  router.get('/badges/:file', (req: Request, res: Response, next: NextFunction) => {
    const file = String(req.params.file);
    const id = file.endsWith('.svg') ? file.slice(0, -'.svg'.length) : '';
    badgeOf(deps, id).then((badge) => {
      res.setHeader('cache-control', 'no-cache, max-age=0');
      if (badge === null) return void res.status(404).json(NO_BADGE);
      const svg = badgeSvg(badge);
      const etag = `"${createHash('sha256').update(svg).digest('base64url').slice(0, 27)}"`;
      res.setHeader('etag', etag);
      // Checked here rather than by res.send's `req.fresh`, which ignores If-None-Match whenever the
      // request says `cache-control: no-cache`, as fetch() adds to every conditional request.
      if (matches(req.headers['if-none-match'], etag)) return void res.status(304).end();
      res.setHeader('x-content-type-options', 'nosniff');
      res.setHeader('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'");
      res.type('image/svg+xml; charset=utf-8').send(svg);
    }, next);
  });
  return router;
}
