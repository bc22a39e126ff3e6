/** What /healthz and /readyz ask of the store: does it answer, soon enough for a balancer's check. */

import { finishedWithin } from '../core/deadline.ts';

/** How long a health check waits for the database before it says unreachable. */
export const HEALTH_TIMEOUT_MS = 2000;

/** Whether `ping` resolved within `ms` (a hung connection must not hang the check). */
export async function answersWithin(ping: () => Promise<void>, ms = HEALTH_TIMEOUT_MS): Promise<boolean> {
  try {
    return await finishedWithin(ping(), ms);
  } catch {
    return false;
  }
}
