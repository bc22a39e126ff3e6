/**
 * inTurns(): a flush of presence releases every reply waiting for it (thousands in a reconnect
 * storm) a few at a time, so what else the event loop has to do (a publish POST) goes between.
 */
import { expect, test } from 'bun:test';
import { inTurns, PER_TURN } from '../src/core/in-turns.ts';

test('callbacks run in order, a turn of them at a time, and work queued meanwhile runs between the turns', async () => {
  const ran: string[] = [];
  const count = PER_TURN * 2 + 5;
  const done = new Promise<void>((resolve) => {
    setTimeout(() => ran.push('other'), 0);
    inTurns(Array.from({ length: count }, (_, i) => () => {
      ran.push(String(i));
      if (i === count - 1) resolve();
    }));
    // The first turn ran at once.
    expect(ran.length).toBe(PER_TURN);
  });
  await done;
  const callbacks = ran.filter((r) => r !== 'other');
  expect(callbacks).toEqual(Array.from({ length: count }, (_, i) => String(i)));
  // What was queued before the first turn ended ran before the second began.
  expect(ran.indexOf('other')).toBe(PER_TURN);
});

test('a turn-sized list runs at once, and an empty one does nothing', () => {
  const ran: number[] = [];
  inTurns(Array.from({ length: PER_TURN }, (_, i) => () => void ran.push(i)));
  expect(ran).toHaveLength(PER_TURN);
  inTurns([]);
  expect(ran).toHaveLength(PER_TURN);
});
