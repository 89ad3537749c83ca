import { isatty } from 'node:tty';
import { pino, type DestinationStream, type Logger } from 'pino';
import pretty from 'pino-pretty';
import type { ConfiguredLogLevel, Log, LogFormat } from '../util/log.js';

/**
 * Where Kiln's log goes: standard error, as one JSON object per line, or as coloured lines for a
 * person (pino-pretty) when it is a terminal and KILN_LOG_FORMAT does not say `json`. The check is
 * on fd 2 itself, so the worker thread of `kiln start` decides as the main thread does. Both write
 * synchronously: the process exits right after its shutdown, and an asynchronous destination
 * would lose the last lines.
 */
export function logDestination(format: LogFormat, terminal = isatty(2)): DestinationStream {
  if (!readableLog(format, terminal)) return pino.destination({ dest: 2, sync: true });
  return pretty({
    destination: 2,
    sync: true,
    colorize: colourLog(terminal),
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname,role,thread',
    // The role (and thread) lead the line instead of trailing it as fields.
    messageFormat: (line, messageKey) => {
      const where = typeof line.role === 'string' ? `[${line.role}${typeof line.thread === 'string' ? `/${line.thread}` : ''}] ` : '';
      return `${where}${String(line[messageKey] ?? '')}`;
    },
  });
}

/** Whether the log is written for a person (pino-pretty) rather than as JSON lines. */
export function readableLog(format: LogFormat, terminal = isatty(2)): boolean {
  return format === 'pretty' || (format === 'auto' && terminal);
}

/** Colours in the readable log: on a terminal, unless NO_COLOR is set. */
export function colourLog(terminal = isatty(2)): boolean {
  return terminal && (process.env.NO_COLOR ?? '') === '';
}

/** A pino logger writing to `destination` (standard error, as KILN_LOG_FORMAT says, by default). */
export function createLogger(level: ConfiguredLogLevel, destination: DestinationStream = logDestination('auto')): Logger {
  return pino(
    {
      level,
      timestamp: pino.stdTimeFunctions.isoTime,
      // `level` as its name ("info"), which people and log pipelines read more easily than 30.
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

/** The Log adapter over a pino logger: the fields become the line's properties. */
export function pinoLog(logger: Logger): Log {
  return (message, fields) => {
    if (fields === undefined) {
      logger.info(message);
      return;
    }
    const { level = 'info', ...rest } = fields;
    logger[level](rest, message);
  };
}
