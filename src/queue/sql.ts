/**
 * Queue operations as plain SQL with positional parameters, for code that holds a pg client
 * rather than an EntityManager. The task names match queue.ts.
 */
export const enqueueArchiveSql = `select graphile_worker.add_job('kiln_archive_log', json_build_object('executionId', $1::text), job_key => 'archive:' || $1, max_attempts => 25)`;
