/** Picks the adapter of the runtime we are running on. */
import type { RuntimeAdapter } from './adapter.ts';

/** Loads the adapter for the current runtime (only that runtime's modules are imported). */
export async function loadRuntime(): Promise<RuntimeAdapter> {
  const g = globalThis as { Bun?: unknown; Deno?: unknown };
  if (g.Bun !== undefined) return (await import('./bun.ts')).runtime;
  if (g.Deno !== undefined) return (await import('./deno.ts')).runtime;
  return (await import('./node.ts')).runtime;
}
