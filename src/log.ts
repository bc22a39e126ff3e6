/**
 * The instance's log (pino): one JSON line per event on stderr, each with its
 * level, time, instance and region, and the connection or request it is about;
 * in a terminal, the same lines made readable. stdout carries only the
 * "listening" line.
 */
import { pino, type DestinationStream, type Logger } from 'pino';

export type LogLevel = 'debug' | 'info' | 'warn' | 'silent';
export type LogFormat = 'json' | 'pretty';
/** What a line is about: `conn`, `uid`, `ip`, `err` (an Error, written with its stack)… */
export type LogFields = Record<string, unknown>;

export interface Log {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  /** A log whose every line also carries `fields`. */
  child(fields: LogFields): Log;
}

export interface LogOptions {
  level: LogLevel;
  format: LogFormat;
  instance?: string;
  region?: string;
  /** Where the lines go (default stderr). */
  destination?: DestinationStream;
}

/** Creates the log of one instance. */
export function createLog({ level, format, instance, region, destination }: LogOptions): Log {
  const out = destination ?? (format === 'pretty' ? readableStream() : pino.destination({ dest: 2, sync: true }));
  const logger = pino(
    {
      level,
      base: region === undefined ? { instance } : { instance, region },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    out,
  );
  return wrap(logger);
}

/** MESH_LOG_FORMAT=auto: readable in a terminal, JSON lines anywhere else. */
export function formatFor(setting: 'auto' | LogFormat): LogFormat {
  if (setting !== 'auto') return setting;
  return process.stderr.isTTY ? 'pretty' : 'json';
}

function wrap(logger: Logger): Log {
  return {
    debug: (message, fields) => logger.debug(fields ?? {}, message),
    info: (message, fields) => logger.info(fields ?? {}, message),
    warn: (message, fields) => logger.warn(fields ?? {}, message),
    error: (message, fields) => logger.error(fields ?? {}, message),
    child: (fields) => wrap(logger.child(fields)),
  };
}

const SHOWN_ELSEWHERE = new Set(['level', 'time', 'msg', 'instance', 'region', 'err']);

/** Turns each JSON line into `12:00:01.234 WARN  fra-1 message key=value`, errors with their stack. */
function readableStream(): DestinationStream {
  return {
    write(line: string) {
      const entry = JSON.parse(line) as Record<string, unknown>;
      const time = String(entry.time).slice(11, 23);
      const where = [entry.instance, entry.region].filter((v) => v !== undefined).join('/');
      const fields = Object.entries(entry)
        .filter(([key]) => !SHOWN_ELSEWHERE.has(key))
        .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`);
      const err = entry.err as { stack?: string; message?: string } | undefined;
      const tail = err ? `\n  ${(err.stack ?? err.message ?? '').replace(/\n/g, '\n  ')}` : '';
      process.stderr.write(`${time} ${String(entry.level).toUpperCase().padEnd(5)} ${where} ${entry.msg}${fields.length ? ` ${fields.join(' ')}` : ''}${tail}\n`);
    },
  };
}
