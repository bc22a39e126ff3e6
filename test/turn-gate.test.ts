/**
 * TurnGate: a herd's client work starts a slice of each turn at a time, in the order it came, and
 * whatever else the event loop has to do (a publish POST) runs between the turns.
 */
import { expect, test } from 'bun:test';
import { TurnGate } from '../src/core/turn-gate.ts';

/** A clock that moves only when the work it times says so. */
function fakeClock(): { now: () => number; spend: (ms: number) => void } {
  let t = 0;
  return { now: () => t, spend: (ms) => void (t += ms) };
}

test('work starts while the turn\'s slice lasts; the rest starts in later turns, in order, with other work between', async () => {
  const clock = fakeClock();
  const gate = new TurnGate(5, clock.now);
  const started: string[] = [];
  // Each piece of work takes 2 ms: three fit in a 5 ms slice (started 0, 2 and 4 ms in).
  const all: Promise<void>[] = [];
  for (let i = 0; i < 8; i++) {
    all.push(
      gate.pass().then(() => {
        started.push(String(i));
        clock.spend(2);
      }),
    );
    // Arriving as I/O callbacks do: what each one started runs before the next arrives.
    await Promise.resolve();
  }
  // Queued after the herd arrived: it must not wait for all of the herd.
  setTimeout(() => started.push('other'), 0);
  expect(started).toEqual(['0', '1', '2']);
  expect(gate.waiting).toBe(5);
  await Promise.all(all);
  expect(started.filter((s) => s !== 'other')).toEqual(['0', '1', '2', '3', '4', '5', '6', '7']);
  // The gate's next turn (its timer was set first) started three more, then the other work ran.
  expect(started.slice(0, 7)).toEqual(['0', '1', '2', '3', '4', '5', 'other']);
  expect(gate.waiting).toBe(0);
});

test('within the slice every caller starts at once, without waiting for a turn', async () => {
  const gate = new TurnGate(5, fakeClock().now);
  let passed = 0;
  for (let i = 0; i < 100; i++) void gate.pass().then(() => passed++);
  await Promise.resolve();
  expect(passed).toBe(100);
  expect(gate.waiting).toBe(0);
});

test('once the herd has passed, the next caller starts at once again', async () => {
  const clock = fakeClock();
  const gate = new TurnGate(5, clock.now);
  const herd: Promise<void>[] = [];
  for (let i = 0; i < 6; i++) {
    herd.push(gate.pass().then(() => clock.spend(3)));
    await Promise.resolve();
  }
  expect(gate.waiting).toBe(4);
  await Promise.all(herd);
  expect(gate.waiting).toBe(0);
  // A turn later the slice begins again: nobody waits.
  await new Promise((resolve) => setTimeout(resolve, 0));
  let passed = false;
  const pass = gate.pass().then(() => (passed = true));
  await Promise.resolve();
  expect(passed).toBe(true);
  await pass;
});
