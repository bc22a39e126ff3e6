/**
 * The process's open-file limit, which bounds how many sockets it can hold: read
 * from /proc/self/limits on Linux (what Fly machines, Docker and systemd run);
 * null elsewhere. No runtime pgmesh runs on (Node, Bun, Deno) can raise the soft
 * limit itself, so it is reported, not changed: docs/deploying.md says where to
 * raise it.
 */
import { readFileSync } from 'node:fs';

export interface OpenFileLimit {
  soft: number;
  hard: number;
}

/** The soft and hard open-file limits, or null where they cannot be read (or are unlimited). */
export function openFileLimit(): OpenFileLimit | null {
  let text: string;
  try {
    text = readFileSync('/proc/self/limits', 'utf8');
  } catch {
    return null;
  }
  const match = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(text);
  if (match === null || match[1] === 'unlimited') return null;
  return { soft: Number(match[1]), hard: match[2] === 'unlimited' ? Number.POSITIVE_INFINITY : Number(match[2]) };
}
