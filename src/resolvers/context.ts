import type { EntityManager } from '@mikro-orm/postgresql';
import type { Principal, TokenVerifier } from '../auth/types.js';
import { bearerToken } from '../auth/token.js';
import { UnauthenticatedError } from '../errors.js';
import type { EventHub } from '../events/EventHub.js';
import type { Deps } from '../services/deps.js';

/** What every resolver gets: the verified caller, a request-scoped EntityManager, the services' deps. */
export interface Context {
  principal: Principal;
  em: EntityManager;
  deps: Deps;
  /** The process's live events; present on the graphql-ws transport, where subscriptions run. */
  events?: EventHub;
}

/**
 * Builds the context of one request from its Authorization header. No token or a bad one is
 * UNAUTHENTICATED before any resolver runs.
 */
export async function buildContext(deps: Deps, verifier: TokenVerifier, authorization: string | undefined): Promise<Context> {
  const token = bearerToken(authorization);
  if (token === null) throw new UnauthenticatedError('missing bearer token');
  const principal = await verifier.verify(token);
  return { principal, em: deps.orm.em.fork(), deps };
}
