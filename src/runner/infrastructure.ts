import pg from 'pg';

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
 * Whether `err` says the infrastructure failed, judged by where it comes from, never by its text
 * (a build's own messages, git's among them, may say anything): an InfrastructureError (raised at
 * the Docker and Postgres boundaries, see DockerBackend and {@link atPostgresBoundary}), a socket
 * error code of a lost or refused connection (a missing Unix socket included), or Postgres
 * refusing work while it shuts down or starts (SQLSTATE classes 08 and 57P).
 */
export function isInfrastructureError(err: unknown): boolean {
  if (err instanceof InfrastructureError) return true;
  if (!(err instanceof Error)) return false;
  const e = err as Error & { code?: unknown; syscall?: unknown };
  const code = typeof e.code === 'string' ? e.code : '';
  if (CONNECTION_CODES.has(code)) return true;
  if (code === 'ENOENT' && e.syscall === 'connect') return true;
  return /^08|^57P0[1-4]$/.test(code);
}

/**
 * A socket error of the container engine's connection: refused, no socket file, or dropped. Postgres's
 * lost connections reach a run as InfrastructureErrors (atPostgresBoundary), so a bare socket error
 * is the engine's (dockerode passes Node's own errors on, sometimes as the `cause`).
 */
function isEngineSocketError(err: unknown): boolean {
  if (!(err instanceof Error) || err instanceof InfrastructureError) return false;
  const socketError = (e: unknown): boolean => {
    const { code, syscall } = (e ?? {}) as { code?: unknown; syscall?: unknown };
    return typeof code === 'string' && (CONNECTION_CODES.has(code) || (code === 'ENOENT' && syscall === 'connect'));
  };
  // A cause counts only under a plain Error: Kiln's own errors (an artifact the store refused) say
  // what failed themselves, and their causes may be sockets of something else (S3).
  return socketError(err) || (err.constructor === Error && socketError(err.cause));
}

/**
 * The text a run records for an error that broke it: "<engine> is not reachable (is it running?)"
 * for the engine's socket errors, rather than Node's `connect ENOENT /var/run/docker.sock`
 * (docs/design.md#configuration-checks); the error's own message otherwise.
 */
export function runErrorText(err: unknown, engine: string): string {
  if (isEngineSocketError(err)) return `${engine} is not reachable (is it running?)`;
  return err instanceof Error ? err.message : String(err);
}

/**
 * What the pg client threw, classified by its origin: an error the server answered with is the
 * statement's (unless its SQLSTATE says the server cannot serve now); anything else the client
 * throws ("Connection terminated unexpectedly", a connection timeout, a closed client) is about the
 * connection, so an InfrastructureError with the same message.
 */
export function fromPostgres(err: unknown): unknown {
  if (err instanceof InfrastructureError) return err;
  if (err instanceof pg.DatabaseError && !isInfrastructureError(err)) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new InfrastructureError(message, { cause: err });
}

type Queryable = { query: (...args: unknown[]) => unknown };

function classifiedQuery(target: Queryable): (...args: unknown[]) => unknown {
  return (...args) => {
    const result = target.query(...args);
    // A callback or a Submittable (cursor) is left alone; Kiln's runner awaits promises only.
    return result instanceof Promise ? result.catch((err: unknown) => Promise.reject(fromPostgres(err))) : result;
  };
}

/** `target` with `query` classified and every other member as it is (methods bound to it). */
function withClassifiedQuery<T extends object>(target: T, extra: Partial<Record<PropertyKey, unknown>> = {}): T {
  return new Proxy(target, {
    get(obj, prop) {
      if (prop === 'query') return classifiedQuery(obj as unknown as Queryable);
      if (prop in extra) return extra[prop as string];
      const value = Reflect.get(obj, prop, obj) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(obj) : value;
    },
  });
}

/**
 * The pool as the runner uses it while an execution runs: errors of the pg client itself (a lost
 * connection) surface as InfrastructureErrors, on `pool.query` and on the clients `pool.connect`
 * hands out (transactions), so that a run broken by Postgres is handed to a next attempt while
 * everything else keeps its own class (see isInfrastructureError).
 */
export function atPostgresBoundary(pool: pg.Pool): pg.Pool {
  const connect = async (): Promise<pg.PoolClient> => {
    let client: pg.PoolClient;
    try {
      client = await pool.connect();
    } catch (err) {
      throw fromPostgres(err);
    }
    return withClassifiedQuery(client);
  };
  return withClassifiedQuery(pool, { connect });
}
