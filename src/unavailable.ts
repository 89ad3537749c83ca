import { ConnectionException } from '@mikro-orm/core';
import { isInfrastructureError } from './runner/infrastructure.js';

/**
 * Messages of the pg client and pool for a connection that failed or broke; they carry no code
 * (node-postgres raises them as plain Errors), so these are recognised by their text. Only used to
 * answer 503 instead of 500: nothing about a run's outcome depends on it.
 */
const PG_CONNECTION_MESSAGES = /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Connection terminated due to connection timeout)/;

/**
 * Whether a request failed because Postgres could not be reached (down, restarting, the link cut):
 * the client should retry later (503, SERVICE_UNAVAILABLE), not report a bug (500). Walks the
 * `cause` chain, since MikroORM and Kiln wrap driver errors.
 */
export function databaseUnavailable(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof ConnectionException || isInfrastructureError(e)) return true;
    if (typeof (e as { code?: unknown }).code !== 'string' && PG_CONNECTION_MESSAGES.test(e.message)) return true;
  }
  return false;
}

/** What the client is told; a write cut off mid-commit may or may not have been stored. */
export const UNAVAILABLE_MESSAGE = 'the database cannot be reached right now; retry shortly (a change cut off by the outage may or may not have been applied: read it back first)';

/** Seconds a client should wait before retrying (Retry-After). */
export const UNAVAILABLE_RETRY_AFTER_S = 2;
