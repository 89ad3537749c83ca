import express, { type NextFunction, type Request, type Response } from 'express';
import { DomainError } from '../errors.js';
import type { Deps } from '../services/deps.js';
import { deliverHook } from '../services/hookTrigger.js';

/** Largest delivery body read; GitHub caps its payloads at 25 MB, pushes are far smaller. */
export const MAX_HOOK_BODY_BYTES = 1024 * 1024;

/** The one answer to every refused delivery, whatever the reason: it tells nothing about what exists. */
const REFUSED = { error: 'the signature does not match', code: 'UNAUTHENTICATED' } as const;

/**
 * `POST /api/v1/hooks/:job_id` (docs/design.md#webhook-triggers): no bearer token, the signature
 * is the authentication. The raw body is read (capped) before anything parses it, because the
 * signature is over its exact bytes.
 */
export function hooksRouter(deps: Deps, log: (m: string) => void): express.Router {
  const router = express.Router();
  router.post('/:job_id', express.raw({ type: () => true, limit: MAX_HOOK_BODY_BYTES }), (req: Request, res: Response, next: NextFunction) => {
    const header = (name: string) => (typeof req.headers[name] === 'string' ? (req.headers[name] as string) : undefined);
    const jobId = String(req.params.job_id);
    const deliveryId = header('x-github-delivery');
    const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    deliverHook(deps, { jobId, signature: header('x-hub-signature-256'), deliveryId, event: header('x-github-event'), body }).then((outcome) => {
      const about = `job ${jobId.slice(0, 64)} delivery ${deliveryId?.slice(0, 64) ?? '-'} from ${req.socket.remoteAddress ?? '?'}`;
      if (!outcome.ok) {
        log(`webhook refused (401): ${about}: ${outcome.reason}`);
        res.status(401).json(REFUSED);
        return;
      }
      log(`webhook accepted: ${about}: ${outcome.executionId === null ? 'no run' : `${outcome.replayed ? 'replay of' : 'ran'} execution ${outcome.executionId}`}`);
      res.status(outcome.replayed || outcome.executionId === null ? 200 : 201).json({ execution_id: outcome.executionId, replayed: outcome.replayed, ref: outcome.ref });
    }, next);
  });
  router.use((err: unknown, _req: Request, res: Response, next: NextFunction) => {
    const e = err as { type?: string };
    if (e.type === 'entity.too.large') res.status(413).json({ error: `a delivery may have at most ${MAX_HOOK_BODY_BYTES} bytes`, code: 'BAD_REQUEST' });
    // A signed delivery the job's concurrency policy refuses (409), as `triggerJob` answers it.
    else if (err instanceof DomainError) res.status(err.httpStatus).json({ error: err.message, code: err.code });
    else next(err);
  });
  return router;
}
