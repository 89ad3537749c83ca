import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type pg from 'pg';
import type { ArtifactStore } from '../storage/ArtifactStore.js';
import type { Log } from '../util/log.js';
import { KilnMetrics } from './metrics.js';
import { processReadiness } from './processOps.js';
import { publicReport, type Readiness } from './readiness.js';

/** What the operational endpoints read: one per process, shared by its listeners. */
export interface OpsEndpoints {
  readiness: Readiness;
  metrics: KilnMetrics;
  log: Log;
}

/**
 * Endpoints for an API process started on its own (no composition root): Postgres and store checks,
 * fresh metrics. They query `deps.pool`, coalesced (one query per check or scrape at a time, with
 * timeouts); startKiln gives its endpoints a pool of their own instead (createOpsPool).
 */
export function processOps(deps: { pool: pg.Pool; store: ArtifactStore }, log: Log): OpsEndpoints {
  const metrics = new KilnMetrics({ defaultMetrics: false });
  metrics.watchDatabase(deps.pool);
  return { readiness: processReadiness({ ...deps, log }), metrics, log };
}

function send(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, { 'content-type': contentType, 'cache-control': 'no-store' });
  res.end(body);
}

/**
 * Answers `GET|HEAD /healthz`, `/readyz` and `/metrics`; returns false for any other request (the
 * caller routes it). No authentication: operators keep these ports off public networks.
 *
 * - /healthz: 200 `{"status":"ok"}` whenever the process can answer at all (liveness).
 * - /readyz: 200 when every check passes, else 503 naming the failed checks (and during shutdown);
 *   why they failed goes to the log only (publicReport).
 * - /metrics: Prometheus text format.
 */
export function handleOpsRequest(ops: OpsEndpoints, req: IncomingMessage, res: ServerResponse): boolean {
  if (req.method !== 'GET' && req.method !== 'HEAD') return false;
  const path = (req.url ?? '/').split('?')[0];
  switch (path) {
    case '/healthz':
      send(res, 200, 'application/json; charset=utf-8', JSON.stringify({ status: 'ok', shuttingDown: ops.readiness.shuttingDown }));
      return true;
    case '/readyz':
      ops.readiness.report().then(
        (r) => send(res, r.ready ? 200 : 503, 'application/json; charset=utf-8', JSON.stringify(publicReport(r))),
        (err: Error) => {
          ops.log(`readiness: ${err.message}`, { level: 'error', err });
          send(res, 503, 'application/json; charset=utf-8', JSON.stringify({ status: 'not ready' }));
        },
      );
      return true;
    case '/metrics':
      ops.metrics.render().then(
        ({ contentType, body }) => send(res, 200, contentType, body),
        (err: Error) => {
          ops.log(`metrics: ${err.message}`, { level: 'error', err });
          send(res, 500, 'text/plain; charset=utf-8', 'metrics failed (see the log)\n');
        },
      );
      return true;
    default:
      return false;
  }
}

/** Express-style middleware (express 5 passes Node's request and response) for the API server. */
export function opsMiddleware(ops: OpsEndpoints) {
  return (req: IncomingMessage, res: ServerResponse, next: () => void): void => {
    if (!handleOpsRequest(ops, req, res)) next();
  };
}

/** The worker's own listener (KILN_WORKER_PORT): the operational endpoints and nothing else. */
export interface OpsServer {
  url: string;
  port: number;
  server: Server;
  stop(): Promise<void>;
}

export async function startOpsServer(ops: OpsEndpoints, host: string, port: number): Promise<OpsServer> {
  const server = createServer((req, res) => {
    if (!handleOpsRequest(ops, req, res)) send(res, 404, 'application/json; charset=utf-8', JSON.stringify({ error: 'not found' }));
  });
  // Probes and scrapes are short; an idle keep-alive socket must not hold the shutdown up.
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  const h = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${h}:${bound}`,
    port: bound,
    server,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
        // A scrape in flight gets a moment; then every socket goes.
        setTimeout(() => server.closeAllConnections(), 2000).unref();
      }),
  };
}
