import { pino, type DestinationStream, type Logger } from 'pino';
import type { ConfiguredLogLevel, Log } from '../util/log.js';

/**
 * A pino logger writing one JSON object per line. Writes are synchronous: the process exits
 * right after its shutdown, and an asynchronous destination would lose the last lines.
 */
export function createLogger(level: ConfiguredLogLevel, destination: DestinationStream = pino.destination({ dest: 2, sync: true })): Logger {
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
