/** Waiting for something that may never come: a hung database, a thread that does not stop. */

/** Whether `work` settled within `ms`: true once it resolves, false past `ms`; its rejection passes through. The timer never outlives the wait. */
export async function finishedWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<false>((resolve) => (timer = setTimeout(resolve, ms, false)));
  try {
    return await Promise.race([work.then(() => true), late]);
  } finally {
    clearTimeout(timer);
  }
}
