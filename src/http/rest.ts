import express, { type NextFunction, type Request, type Response } from 'express';
import type { Principal } from '../auth/types.js';
import { DomainError, NotFoundError, ValidationError } from '../errors.js';
import { databaseUnavailable, UNAVAILABLE_MESSAGE, UNAVAILABLE_RETRY_AFTER_S } from '../unavailable.js';
import { archivedOrStoredLines, archivedOrStoredLog } from '../services/readLog.js';
import type { Deps } from '../services/deps.js';
import { listExecutions, type ExecutionView } from '../services/executionQueries.js';
import { getExecution, getJob } from '../services/findOwned.js';
import { lastExecutionOf } from '../services/jobQueries.js';
import { MAX_JOB_FILE_BYTES } from '../jobfile/parse.js';
import { submitJobs } from '../services/submitJobs.js';
import { logUrlOf, openArtifact } from '../services/executionFiles.js';
import { pipeline } from 'node:stream/promises';
import { visibleNextRunAt } from '../services/schedules.js';
import { badgeRouter } from './badge.js';
import type { RequestAuth } from './requestAuth.js';
import { sessionRouter } from './sessionRoutes.js';
import { type SignIn, signInRouter } from './signInRoutes.js';

const YAML_TYPES = ['application/yaml', 'text/yaml', 'application/x-yaml', 'text/plain'];

type Authed = Request & { principal: Principal };

/** JSON shape of an execution on the REST surface (snake_case, like the seed's routes). */
async function executionJson(deps: Deps, e: ExecutionView) {
  return {
    id: e.id,
    job_id: e.job.id,
    number: e.number,
    status: e.status,
    trigger: e.trigger,
    attempt: e.attempt,
    scheduled_for: e.scheduledFor?.toISOString() ?? null,
    queued_at: e.queuedAt.toISOString(),
    started_at: e.startedAt?.toISOString() ?? null,
    finished_at: e.finishedAt?.toISOString() ?? null,
    duration_ms: e.startedAt && e.finishedAt ? e.finishedAt.getTime() - e.startedAt.getTime() : null,
    exit_code: e.exitCode,
    error: e.error,
    log_url: await logUrlOf(deps.store, e),
  };
}

/**
 * The REST routes (docs/design.md#rest) over the same services as GraphQL, on a bearer token or
 * the session cookie (a session's writes need its CSRF token: docs/design.md#web-sessions).
 */
export function restRouter(deps: Deps, auth: RequestAuth, signIn: SignIn, log: (m: string) => void): express.Router {
  const router = express.Router();
  const wrap = (fn: (req: Authed, res: Response) => Promise<void>) => (req: Request, res: Response, next: NextFunction) =>
    fn(req as Authed, res).catch(next);

  // Public: sign-in, and badges (docs/design.md#badges); everything after needs a token or session.
  router.use(sessionRouter(deps, auth), signInRouter(deps, auth, signIn), badgeRouter(deps));
  router.use((req: Request, _res: Response, next: NextFunction) => {
    auth.require(req, req.method !== 'GET' && req.method !== 'HEAD').then(({ principal }) => {
      (req as Authed).principal = principal;
      next();
    }, next);
  });

  router.post(
    '/submit_job',
    express.text({ type: YAML_TYPES, limit: MAX_JOB_FILE_BYTES }),
    wrap(async (req, res) => {
      if (typeof req.body !== 'string') {
        res.status(415).json({ error: `send the job file with Content-Type ${YAML_TYPES.join(', ')}`, code: 'BAD_REQUEST' });
        return;
      }
      const jobs = await submitJobs(deps, req.principal.sub, req.body);
      res.status(201).json({ job_id: jobs[0]!.id, job_ids: jobs.map((j) => j.id) });
    }),
  );

  router.get(
    '/retrieve_history_execution/:job_id',
    wrap(async (req, res) => {
      const em = deps.orm.em.fork();
      const job = await getJob(em, req.principal.sub, String(req.params.job_id));
      const page = await listExecutions(deps.pool, req.principal.sub, { jobId: job.id, first: 100, after: typeof req.query.after === 'string' ? req.query.after : null });
      if (page.hasNextPage && page.endCursor) res.setHeader('X-Next-Cursor', page.endCursor);
      res.json(await Promise.all(page.items.map((i) => executionJson(deps, i.node))));
    }),
  );

  router.get(
    '/last_execution_logs/:job_id',
    wrap(async (req, res) => {
      const em = deps.orm.em.fork();
      const job = await getJob(em, req.principal.sub, String(req.params.job_id));
      const last = await lastExecutionOf(em, job);
      if (last === null) throw new NotFoundError('execution of job', job.id);
      res.type('text/plain; charset=utf-8');
      await archivedOrStoredLog(deps, last, res);
    }),
  );

  router.get(
    '/executions/:id/log',
    wrap(async (req, res) => {
      const execution = await getExecution(deps.orm.em.fork(), req.principal.sub, String(req.params.id));
      res.type('text/plain; charset=utf-8');
      await archivedOrStoredLog(deps, execution, res);
    }),
  );

  // Every stored line with its fields, one JSON object per line: the build page loads a whole log
  // with it, as bytes Postgres (or the store) formats, not as objects GraphQL resolves one by one.
  router.get(
    '/executions/:id/log.ndjson',
    wrap(async (req, res) => {
      const execution = await getExecution(deps.orm.em.fork(), req.principal.sub, String(req.params.id));
      res.type('application/x-ndjson; charset=utf-8');
      await archivedOrStoredLines(deps, execution, res);
    }),
  );

  // Where `Execution.artifacts.url` points when the store has no URLs of its own (local directory).
  router.get(
    '/executions/:id/artifacts/:path',
    wrap(async (req, res) => {
      const execution = await getExecution(deps.orm.em.fork(), req.principal.sub, String(req.params.id));
      const { stream, fileName } = await openArtifact(deps, execution, String(req.params.path));
      res.type('application/gzip');
      res.attachment(fileName);
      await pipeline(stream, res);
    }),
  );

  router.get(
    '/job_status/:job_id',
    wrap(async (req, res) => {
      const em = deps.orm.em.fork();
      const job = await getJob(em, req.principal.sub, String(req.params.job_id));
      const last = await lastExecutionOf(em, job);
      res.json({
        job_id: job.id,
        name: job.name,
        status: last?.status ?? 'SCHEDULED',
        paused: job.paused,
        next_run_at: visibleNextRunAt(job)?.toISOString() ?? null,
        last_execution: last ? await executionJson(deps, last) : null,
      });
    }),
  );

  router.use((_req: Request, res: Response) => {
    res.status(404).json({ error: 'no such route', code: 'NOT_FOUND' });
  });
  router.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const [status, body] = restError(err, log);
    if (status === 503) res.setHeader('retry-after', String(UNAVAILABLE_RETRY_AFTER_S));
    res.status(status).json(body);
  });
  return router;
}

/** Maps an error to the REST answer: domain errors by their code, body-parser errors by theirs. */
function restError(err: unknown, log: (m: string) => void): [number, Record<string, unknown>] {
  if (err instanceof DomainError) {
    const diagnostics = err instanceof ValidationError ? { diagnostics: err.diagnostics } : {};
    return [err.httpStatus, { error: err.message, code: err.code, ...diagnostics }];
  }
  const e = err as { status?: number; type?: string; message?: string };
  if (e.type === 'entity.too.large') {
    const message = `the job file is larger than ${MAX_JOB_FILE_BYTES} bytes`;
    return [413, { error: message, code: 'BAD_USER_INPUT', diagnostics: [{ line: 1, column: 1, path: '', message, severity: 'error' }] }];
  }
  if (typeof e.status === 'number' && e.status >= 400 && e.status < 500) {
    return [e.status, { error: e.message ?? 'bad request', code: 'BAD_REQUEST' }];
  }
  if (databaseUnavailable(err)) return [503, { error: UNAVAILABLE_MESSAGE, code: 'SERVICE_UNAVAILABLE', retry_after_seconds: UNAVAILABLE_RETRY_AFTER_S }];
  log(`internal error on REST: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  return [500, { error: 'internal server error', code: 'INTERNAL_SERVER_ERROR' }];
}
