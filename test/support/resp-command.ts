/** Parsing what a client sends, for the fake RESP servers of the Redis read-connection tests. */

import type { Socket } from 'node:net';

/** One RESP command (an array of bulk strings) at the start of `b`, or null if it is not all there. */
function parseCommand(b: Buffer): { args: string[]; size: number } | null {
  let at = 0;
  const line = () => {
    const end = b.indexOf('\r\n', at);
    if (end < 0) return null;
    const text = b.toString('latin1', at, end);
    at = end + 2;
    return text;
  };
  const head = line();
  if (head === null) return null;
  const args: string[] = [];
  for (let n = Number(head.slice(1)); args.length < n; ) {
    const len = line();
    if (len === null) return null;
    const size = Number(len.slice(1));
    if (at + size + 2 > b.length) return null;
    args.push(b.toString('utf8', at, at + size));
    at += size + 2;
  }
  return { args, size: at };
}

/** Calls `onCommand` with each whole command `socket` receives, in order, however the bytes are split. */
export function onCommands(socket: Socket, onCommand: (args: string[]) => void): void {
  let pending = Buffer.alloc(0);
  socket.on('data', (data: Buffer) => {
    pending = Buffer.concat([pending, data]);
    for (;;) {
      const parsed = parseCommand(pending);
      if (parsed === null) break;
      pending = pending.subarray(parsed.size);
      onCommand(parsed.args);
    }
  });
}
