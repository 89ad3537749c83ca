import pg from 'pg';

/** Longest an operational query (probe, scrape) may wait for a connection, and then for its answer. */
export const OPS_QUERY_TIMEOUT_MS = 2000;

/**
 * The pool of the operational queries (/readyz's `select 1`, the /metrics gauges), apart from the
 * pool that claims executions and renews their leases: a hung database, or a flood of probes and
 * scrapes, can hold at most this one connection, never one that lease renewal needs (a worker
 * whose renewals starve fences itself and stops its builds).
 *
 * One connection; waiting for it or for a new one ends after OPS_QUERY_TIMEOUT_MS, and so does a
 * query (client side: `query_timeout`, which also drops the connection; server side:
 * `statement_timeout`). Probes and scrapes are coalesced (see Readiness, KilnMetrics), so at most
 * two queries ever wait here.
 */
export function createOpsPool(connectionString: string, applicationName = 'kiln ops'): pg.Pool {
  const pool = new pg.Pool({
    connectionString,
    max: 1,
    connectionTimeoutMillis: OPS_QUERY_TIMEOUT_MS,
    query_timeout: OPS_QUERY_TIMEOUT_MS,
    statement_timeout: OPS_QUERY_TIMEOUT_MS,
    idleTimeoutMillis: 60_000,
    // An idle ops connection never keeps a process alive.
    allowExitOnIdle: true,
    application_name: applicationName.slice(0, 63),
  });
  pool.on('error', (err) => process.emitWarning(`postgres ops pool: idle client error: ${err.message}`));
  pool.on('connect', (client) => {
    client.on('error', (err) => process.emitWarning(`postgres ops client error: ${err.message}`));
  });
  return pool;
}
