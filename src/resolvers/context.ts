import type { EntityManager } from '@mikro-orm/postgresql';
import type { Principal } from '../auth/types.js';
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

/** The context of one request by an authenticated caller (http/requestAuth.ts authenticates). */
export function buildContext(deps: Deps, principal: Principal): Context {
  return { principal, em: deps.orm.em.fork(), deps };
}
