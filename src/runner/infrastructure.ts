import { setTimeout as delay } from 'node:timers/promises';
import type { ContainerBackend } from './types.js';

/**
 * A run broke because of what it runs on, not because of what the user asked it to run: the
 * container engine went away or lost the container (a daemon restart), or Postgres could not be
 * reached. Such a run is handed to a next attempt, never recorded as the build's failure.
 */
export class InfrastructureError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'InfrastructureError';
  }
}

/** Socket errors of a peer that went away (Docker's socket, Postgres's TCP port). */
const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ECONNABORTED']);

/**
 * Whether `err` says the infrastructure failed: an InfrastructureError, a lost or refused
 * connection (a missing Unix socket included), or Postgres refusing work while it shuts down or
 * starts (SQLSTATE classes 08 and 57P).
 */
export function isInfrastructureError(err: unknown): boolean {
  if (err instanceof InfrastructureError) return true;
  if (!(err instanceof Error)) return false;
  const e = err as Error & { code?: unknown; syscall?: unknown };
  const code = typeof e.code === 'string' ? e.code : '';
  if (CONNECTION_CODES.has(code)) return true;
  if (code === 'ENOENT' && e.syscall === 'connect') return true;
  if (/^08|^57P0[1-4]$/.test(code)) return true;
  return /Connection terminated|not queryable|socket hang up|Client was closed/i.test(e.message);
}

/**
 * Waits until the engine answers again (a restart takes seconds), up to `timeoutMs`; resolves
 * with whether it does. Nothing that still runs on the engine can be removed before that.
 */
export async function waitForEngine(backend: ContainerBackend, timeoutMs: number, pauseMs = 500): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await backend.ping();
      return true;
    } catch {
      if (Date.now() + pauseMs > deadline) return false;
      await delay(pauseMs);
    }
  }
}
