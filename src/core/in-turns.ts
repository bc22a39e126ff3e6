/**
 * Runs many callbacks a few at a time, the event loop turning between: others' I/O (a publish
 * POST, a delivery) is served between the turns instead of after all of them.
 */

/** Callbacks run per turn: a few milliseconds of replies at the most. */
export const PER_TURN = 64;

/** Calls each of `callbacks` in order, PER_TURN of them per turn of the event loop (the first turn now). */
export function inTurns(callbacks: readonly (() => void)[], perTurn = PER_TURN): void {
  let at = 0;
  const turn = () => {
    const end = Math.min(callbacks.length, at + perTurn);
    for (; at < end; at++) callbacks[at]!();
    if (at < callbacks.length) setTimeout(turn, 0);
  };
  turn();
}
