/**
 * Watches server processes from a process of its own (Bun): the most files any of them held
 * open and the most memory any used, sampled every PEAKS_EVERY_MS. Reports JSON lines on
 * stdout: {"ready":1}, then {"report":{"maxOpenFiles","maxRssBytes"}} after each sample.
 *
 * Not on the orchestrator's thread: listing /proc/<pid>/fd of four servers holding 12,500
 * sockets each took 400-900 ms of a busy machine, and done there it stalled the publisher
 * whose latency the reconnect storm measures (its p99 was mostly that stall).
 *
 * PIDs come comma-separated in PEAKS_PIDS.
 */
import { openFiles, rssBytes } from '../proc.ts';

export interface PeaksReport {
  maxOpenFiles: number;
  maxRssBytes: number;
}

const pids = process.env.PEAKS_PIDS!.split(',').map(Number);
const everyMs = Number(process.env.PEAKS_EVERY_MS ?? 1000);
const peaks: PeaksReport = { maxOpenFiles: 0, maxRssBytes: 0 };

function sample(): void {
  for (const pid of pids) {
    try {
      peaks.maxOpenFiles = Math.max(peaks.maxOpenFiles, openFiles(pid));
      peaks.maxRssBytes = Math.max(peaks.maxRssBytes, rssBytes(pid));
    } catch {
      // gone (the stopped instance's turn came): the others still count
    }
  }
  process.stdout.write(`${JSON.stringify({ report: peaks })}\n`);
}

process.stdout.write(`${JSON.stringify({ ready: 1 })}\n`);
setInterval(sample, everyMs);
