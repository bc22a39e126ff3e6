/** A levelled logger writing one line per event to stderr (stdout carries only the "listening" line). */

export type LogLevel = 'debug' | 'info' | 'warn' | 'silent';
const ORDER: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, silent: 3 };

export interface Log {
  debug(...args: unknown[]): void;
  info(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
}

/** A logger that drops lines below `level` (errors are always written unless silent); each line names the instance. */
export function createLog(level: LogLevel, instance?: string): Log {
  const at = ORDER[level];
  const who = instance === undefined ? 'pgmesh' : `pgmesh[${instance}]`;
  const write = (min: number, tag: string) => (...args: unknown[]) => {
    if (at <= min) console.error(`${who} ${tag}`, ...args);
  };
  return { debug: write(0, 'debug'), info: write(1, 'info'), warn: write(2, 'warn'), error: write(2, 'error') };
}
