/**
 * Commands the server API sends to connections wherever they are: join or
 * leave channels, empty a channel, close connections. A command is a message
 * on the reserved channel `$cmd`, so it reaches every instance through the
 * outbox and the backplane, in id order with everything else: a message
 * published after the API answered comes after the command on every instance.
 */
import { z } from 'zod';
import { COMMAND_CHANNEL } from './channels.ts';

const Target = z.union([z.object({ uid: z.string() }), z.object({ connection: z.string() })]);

export const MeshCommand = z.discriminatedUnion('op', [
  z.object({ op: z.literal('subscribe'), target: Target, channels: z.array(z.string()) }),
  z.object({ op: z.literal('unsubscribe'), target: Target, channels: z.array(z.string()) }),
  /** Everyone leaves the channel. */
  z.object({ op: z.literal('ungroup'), channel: z.string() }),
  z.object({ op: z.literal('close'), target: Target, reason: z.string() }),
]);
export type MeshCommand = z.infer<typeof MeshCommand>;
export type CommandTarget = z.infer<typeof Target>;

/** The outbox message that carries a command. */
export function commandMessage(command: MeshCommand): { channel: string; data: string; sender: null } {
  return { channel: COMMAND_CHANNEL, data: JSON.stringify(command), sender: null };
}

/** Reads a command back from its message; null when the data is not one (a newer pgmesh's, say). */
export function readCommand(data: string): MeshCommand | null {
  try {
    const parsed = MeshCommand.safeParse(JSON.parse(data));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}
