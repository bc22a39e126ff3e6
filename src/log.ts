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

// Control characters (C0, DEL, C1) and the Unicode line breaks: what a client could use to forge a line or steer the terminal.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;

/** `text` with every control character written as a \u escape. */
export function escapeControls(text: string): string {
  return text.replace(CONTROL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** A field's value as one token: plain when it is, else quoted and escaped. */
function shown(value: unknown): string {
  if (typeof value !== 'string') return escapeControls(JSON.stringify(value) ?? String(value));
  return /^[^\s"\u0000-\u001f\u007f-\u009f\u2028\u2029]*$/.test(value) ? value : escapeControls(JSON.stringify(value));
}

/** One JSON log line made readable: `12:00:01.234 WARN  fra-1 message key=value`, an error with its stack; nothing in it can start a line of its own. */
export function prettyLine(line: string): string {
  const entry = JSON.parse(line) as Record<string, unknown>;
  const time = String(entry.time).slice(11, 23);
  const where = [entry.instance, entry.region].filter((v) => v !== undefined).join('/');
  const fields = Object.entries(entry)
    .filter(([key]) => !SHOWN_ELSEWHERE.has(key))
    .map(([key, value]) => `${escapeControls(key)}=${shown(value)}`);
  const err = entry.err as { stack?: string; message?: string } | undefined;
  // A stack's own lines stay lines (indented under this one); anything else in it is escaped.
  const tail = err ? `\n  ${String(err.stack ?? err.message ?? '').split('\n').map(escapeControls).join('\n  ')}` : '';
  return `${time} ${String(entry.level).toUpperCase().padEnd(5)} ${escapeControls(where)} ${escapeControls(String(entry.msg))}${fields.length ? ` ${fields.join(' ')}` : ''}${tail}\n`;
}

function readableStream(): DestinationStream {
  return { write: (line: string) => void process.stderr.write(prettyLine(line)) };
}
