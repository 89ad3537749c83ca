import type pg from 'pg';
import { hashSecret, newSecret } from './sessionStore.js';

/**
 * The two kinds of short-lived sign-in state (docs/design.md#web-sessions), both keyed by the
 * hash of a random secret the browser holds: local mode's one-time links and the OIDC flows in
 * progress. Each is taken at most once, by a single statement, so two uses of one secret racing
 * each other cannot both win.
 */

/** Makes a one-time sign-in code for `owner`, good for `ttlMs`; only its hash is stored. */
export async function createSignInCode(pool: pg.Pool, owner: string, ttlMs: number): Promise<string> {
  await pool.query(`delete from web_sign_in_codes where expires_at <= now() - interval '1 day'`);
  const code = newSecret();
  await pool.query(`insert into web_sign_in_codes (code_hash, owner, expires_at) values ($1, $2, now() + make_interval(secs => $3))`, [hashSecret(code), owner, ttlMs / 1000]);
  return code;
}

/** Why a code signs no one in. */
export type CodeRefusal = 'unknown' | 'used' | 'expired';

/** Uses a sign-in code: its owner, or why not. The first use marks it used for good. */
export async function redeemSignInCode(pool: pg.Pool, code: string): Promise<{ owner: string } | { refused: CodeRefusal }> {
  const codeHash = hashSecret(code);
  if (codeHash === null) return { refused: 'unknown' };
  const { rows } = await pool.query<{ owner: string }>(
    `update web_sign_in_codes set used_at = now() where code_hash = $1 and used_at is null and expires_at > now() returning owner`,
    [codeHash],
  );
  if (rows[0]) return { owner: rows[0].owner };
  const { rows: seen } = await pool.query<{ used: boolean }>(`select used_at is not null as used from web_sign_in_codes where code_hash = $1`, [codeHash]);
  if (seen[0] === undefined) return { refused: 'unknown' };
  return { refused: seen[0].used ? 'used' : 'expired' };
}

/** An authorization-code flow between /api/v1/login and /api/v1/callback. */
export interface LoginFlow {
  codeVerifier: string;
  nonce: string;
  /** A same-origin path to send the browser back to. */
  returnTo: string;
}

/** Keeps a flow under its state for `ttlMs`. */
export async function saveLoginFlow(pool: pg.Pool, state: string, flow: LoginFlow, ttlMs: number): Promise<void> {
  await pool.query(`delete from web_login_flows where expires_at <= now()`);
  await pool.query(
    `insert into web_login_flows (state_hash, code_verifier, nonce, return_to, expires_at) values ($1, $2, $3, $4, now() + make_interval(secs => $5))`,
    [hashSecret(state), flow.codeVerifier, flow.nonce, flow.returnTo, ttlMs / 1000],
  );
}

/** Takes (and deletes) the live flow of a state, or null. */
export async function takeLoginFlow(pool: pg.Pool, state: string): Promise<LoginFlow | null> {
  const stateHash = hashSecret(state);
  if (stateHash === null) return null;
  const { rows } = await pool.query<{ code_verifier: string; nonce: string; return_to: string; live: boolean }>(
    `delete from web_login_flows where state_hash = $1 returning code_verifier, nonce, return_to, expires_at > now() as live`,
    [stateHash],
  );
  const row = rows[0];
  return row?.live ? { codeVerifier: row.code_verifier, nonce: row.nonce, returnTo: row.return_to } : null;
}
