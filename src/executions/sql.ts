/** Moved to util/ so that notify/ can run statements without importing executions/ (which queues notifications). */
export * from '../util/sql.js';
