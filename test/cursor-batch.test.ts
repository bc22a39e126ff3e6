/** CursorBatch on its own: moves only go forward, are visible while unwritten, and a failed write goes with the next flush. */
import { describe, expect, test } from 'bun:test';
import { CursorBatch, type CursorMove } from '../src/store/cursor-batch.ts';

describe('CursorBatch', () => {
  test('many moves of one cursor become one write of the newest position; a cursor never moves back', async () => {
    const batch = new CursorBatch();
    for (const id of [3, 9, 5]) batch.advance('u1', 'user:u1', id);
    batch.advance('u2', 'user:u2', 4);
    const writes: CursorMove[][] = [];
    await batch.flush(async (moves) => void writes.push(moves));
    expect(writes).toEqual([[{ uid: 'u1', channel: 'user:u1', id: 9 }, { uid: 'u2', channel: 'user:u2', id: 4 }]]);
    await batch.flush(async (moves) => void writes.push(moves));
    expect(writes).toHaveLength(1); // nothing pending: no write at all
  });

  test('a move is visible from the moment it is made, while waiting and while being written', async () => {
    const batch = new CursorBatch();
    batch.advance('u1', 'c', 7);
    expect(batch.unwritten('u1', 'c')).toBe(7);
    let seenDuringWrite = 0;
    await batch.flush(async () => void (seenDuringWrite = batch.unwritten('u1', 'c')));
    expect(seenDuringWrite).toBe(7);
    expect(batch.unwritten('u1', 'c')).toBe(0);
  });

  test('a failed write is reported and its moves go with the next flush, merged with newer ones', async () => {
    const batch = new CursorBatch();
    batch.advance('u1', 'c', 7);
    await expect(batch.flush(async () => Promise.reject(new Error('db down')))).rejects.toThrow('db down');
    expect(batch.unwritten('u1', 'c')).toBe(7);
    batch.advance('u1', 'd', 2);
    const writes: CursorMove[][] = [];
    await batch.flush(async (moves) => void writes.push(moves));
    expect(writes).toEqual([[{ uid: 'u1', channel: 'c', id: 7 }, { uid: 'u1', channel: 'd', id: 2 }]]);
  });
});
