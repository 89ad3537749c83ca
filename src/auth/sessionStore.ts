import { createHash, randomBytes } from 'node:crypto';
import type pg from 'pg';

/** A signed-in browser's session, as stored (docs/design.md#web-sessions). */
export interface WebSession {
  /** SHA-256 of the cookie's random id; the id itself is never stored. */
  idHash: Buffer;
  /** The `sub` a bearer token of the same user carries: both own the same jobs. */
  owner: string;
  name: string;
  /** The `kiln_csrf` cookie's value, required in `x-csrf-token` on the session's writes. */
  csrfToken: string;
  lastSeenAt: Date;
  /** The absolute end; the idle end is `lastSeenAt` + the configured idle timeout. */
  expiresAt: Date;
}

/** The timeouts a session lives under. */
export interface SessionTimeouts {
  sessionIdleMs: number;
  sessionMaxAgeMs: number;
}

/** 32 random bytes in base64url: the shape of every secret this module hands out. */
const SECRET_SHAPE = /^[A-Za-z0-9_-]{43}$/;

/** A new random secret (session id, CSRF token, sign-in code, OIDC state). */
export function newSecret(): string {
  return randomBytes(32).toString('base64url');
}

/** The stored form of a secret. Secrets of any other shape are refused before reaching the database. */
export function hashSecret(secret: string): Buffer | null {
  if (!SECRET_SHAPE.test(secret)) return null;
  return createHash('sha256').update(secret).digest();
}

interface SessionRow {
  id_hash: Buffer;
  owner: string;
  name: string;
  csrf_token: string;
  last_seen_at: Date;
  expires_at: Date;
}

function fromRow(r: SessionRow): WebSession {
  return { idHash: r.id_hash, owner: r.owner, name: r.name, csrfToken: r.csrf_token, lastSeenAt: r.last_seen_at, expiresAt: r.expires_at };
}

/**
 * Starts a session for `owner`; returns the id for the cookie with the stored session. Sessions
 * that ended are swept here, so the table holds about as many rows as there are live browsers.
 */
export async function createSession(pool: pg.Pool, who: { owner: string; name: string }, t: SessionTimeouts): Promise<{ id: string; session: WebSession }> {
  await pool.query(`delete from web_sessions where expires_at <= now() or last_seen_at <= now() - make_interval(secs => $1)`, [t.sessionIdleMs / 1000]);
  const id = newSecret();
  const { rows } = await pool.query<SessionRow>(
    `insert into web_sessions (id_hash, owner, name, csrf_token, expires_at)
     values ($1, $2, $3, $4, now() + make_interval(secs => $5))
     returning id_hash, owner, name, csrf_token, last_seen_at, expires_at`,
    [hashSecret(id), who.owner, who.name, newSecret(), t.sessionMaxAgeMs / 1000],
  );
  return { id, session: fromRow(rows[0]!) };
}

/**
 * The live session of a cookie's id, or null (unknown, ended, past its absolute end or idle too
 * long). Marks it seen; the write happens at most every quarter of the idle timeout (and at
 * least every minute), not on every request.
 */
export async function findSession(pool: pg.Pool, id: string, t: SessionTimeouts): Promise<WebSession | null> {
  const idHash = hashSecret(id);
  if (idHash === null) return null;
  const touchAfterS = Math.min(60, t.sessionIdleMs / 4000);
  const { rows } = await pool.query<SessionRow>(
    `with live as (
       select * from web_sessions
        where id_hash = $1 and expires_at > now() and last_seen_at > now() - make_interval(secs => $2)
     ), touched as (
       update web_sessions s set last_seen_at = now() from live
        where s.id_hash = live.id_hash and live.last_seen_at <= now() - make_interval(secs => $3)
       returning s.last_seen_at
     )
     select live.id_hash, live.owner, live.name, live.csrf_token, coalesce((select last_seen_at from touched), live.last_seen_at) as last_seen_at, live.expires_at
       from live`,
    [idHash, t.sessionIdleMs / 1000, touchAfterS],
  );
  return rows[0] ? fromRow(rows[0]) : null;
}

/** Ends the session of a cookie's id (logout); true when there was one. */
export async function endSession(pool: pg.Pool, id: string): Promise<boolean> {
  const idHash = hashSecret(id);
  if (idHash === null) return false;
  const { rowCount } = await pool.query(`delete from web_sessions where id_hash = $1`, [idHash]);
  return (rowCount ?? 0) > 0;
}
