/** The pages every user needs and the amplifications issue 11 names, shared by the cost tests. */

/** A page of the tick ledger. */
export const TICKS_PAGE = `query($id: ID!) { job(id: $id) { ticks(first: 100) { edges { node { fireTime outcome execution { id } } } } } }`;
/** A page of 100 executions with their steps. */
export const EXECUTIONS_PAGE = `query($jobId: ID!) { executions(jobId: $jobId, first: 100) { edges { cursor node { id number status startedAt finishedAt error
  steps { index name status exitCode startedAt finishedAt } } } pageInfo { hasNextPage endCursor } } }`;
/** One page of 10,000 log lines. */
export const LOGS_PAGE = `query($id: ID!) { execution(id: $id) { id status logs(limit: 10000) { seq stream step text at } } }`;
/** One log read eight times over (security review H1). */
export const EIGHT_ALIASES = `query($id: ID!) { execution(id: $id) { ${Array.from({ length: 8 }, (_, i) => `a${i}: logs(limit: 10000) { text }`).join(' ')} } }`;
/** Every execution's job's executions' logs (security review H1). */
export const NESTED = `{ executions(first: 100) { edges { node { job { executions(first: 100) { edges { node { logs(limit: 1000) { text } } } } } } } } }`;
