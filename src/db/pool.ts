import pg from 'pg';

/**
 * A pg.Pool for graphile-worker and Kiln's own plain-SQL paths. The `error` handler keeps an
 * idle client's lost connection (Postgres restart, admin termination) from crashing the process;
 * the pool replaces the client on next use.
 */
export function createPool(connectionString: string, max = 10, applicationName = 'kiln'): pg.Pool {
  // application_name shows in pg_stat_activity which process holds which session (and lock).
  const pool = new pg.Pool({ connectionString, max, idleTimeoutMillis: 30_000, application_name: applicationName.slice(0, 63) });
  pool.on('error', (err) => {
    process.emitWarning(`postgres pool: idle client error: ${err.message}`);
  });
  // A checked-out client whose connection dies emits 'error' on itself; unhandled, that would
  // crash the process instead of failing the query in flight.
  pool.on('connect', (client) => {
    client.on('error', (err) => process.emitWarning(`postgres client error: ${err.message}`));
  });
  return pool;
}
