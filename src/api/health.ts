/** What /healthz and /readyz ask of the store: does it answer, soon enough for a balancer's check. */

/** How long a health check waits for the database before it says unreachable. */
export const HEALTH_TIMEOUT_MS = 2000;

/** Whether `ping` resolved within `ms` (a hung connection must not hang the check). */
export async function answersWithin(ping: () => Promise<void>, ms = HEALTH_TIMEOUT_MS): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<false>((resolve) => (timer = setTimeout(resolve, ms, false)));
  try {
    return await Promise.race([ping().then(() => true), late]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}
