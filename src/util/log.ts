/** Levels a log call may ask for in its fields (`{ level: 'warn' }`); `info` when absent. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/**
 * Structured context of one log line: `jobId`, `executionId`, `attempt`, `workerId` where they
 * apply, `err` for an Error (serialized with its stack), and optionally `level`.
 */
export type LogFields = Record<string, unknown> & { level?: LogLevel };

/**
 * How every Kiln module logs. A plain `(message) => void` (what the tests pass) is a valid Log:
 * it simply ignores the fields. In `kiln start|serve|worker` it is the pino adapter (ops/pinoLog.ts),
 * which writes to stderr as KILN_LOG_FORMAT says (JSON lines, or readable lines on a terminal).
 */
export type Log = (message: string, fields?: LogFields) => void;

/** Levels KILN_LOG_LEVEL accepts, lowest first. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type ConfiguredLogLevel = (typeof LOG_LEVELS)[number];

/**
 * Shapes of the log KILN_LOG_FORMAT accepts: `auto` (readable lines on a terminal, JSON
 * otherwise), `json` (always one JSON object per line), `pretty` (always readable lines).
 */
export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];
