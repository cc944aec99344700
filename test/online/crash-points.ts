/**
 * Crash points for kill -9 child processes (crash-worker-main.ts, upload-child-main.ts): `installCrash`
 * makes every Redis connection of the process SIGKILL it at a chosen Redis command of a big commit's step
 * (see `CrashPoint` in crash-child.ts), printing `kill <phase> <at> <kind of command>` first.
 */
import type { Socket } from 'node:net';
import { Redis, type Command } from 'ioredis';
import type { CrashPoint } from './crash-child.ts';

type Kind = CrashPoint['phase'];

/** What a Redis command does in a commit (redis-store.ts `commitPart`), from its keys. */
function kindOf(command: Command): Kind {
  const args = command.args.map((a) => (typeof a === 'string' ? a : String(a)));
  if (command.name === 'hset' && args[0].includes('x{')) return 'stage';
  if (command.name !== 'evalsha' && command.name !== 'eval') return 'any';
  const keys = args.slice(2, 2 + Number(args[1]));
  if (keys.length === 1 && keys[0].includes('w{')) return 'apply';
  return keys.some((k) => k.includes('x{')) ? 'record' : 'commit';
}

function die(point: CrashPoint, kind: Kind): never {
  // (stdout to a pipe is written synchronously on Linux, so the parent gets this line.)
  process.stdout.write(`kill ${point.phase} ${point.at} ${kind}\n`);
  process.kill(process.pid, 'SIGKILL');
  throw new Error('unreachable');
}

/** Lets only the first `fraction` of the socket's next write out, then dies: nothing more is sent. */
function tear(socket: Socket, point: CrashPoint, kind: Kind): void {
  const write = socket.write.bind(socket);
  socket.write = ((data: string | Uint8Array) => {
    socket.write = (() => true) as Socket['write'];
    const bytes = typeof data === 'string' ? Buffer.from(data) : Buffer.from(data);
    const cut = Math.floor(bytes.length * (point.fraction ?? 0.5));
    // Give Redis time to run the complete commands it received.
    write(bytes.subarray(0, cut), () => setTimeout(() => die(point, kind), 50));
    return true;
  }) as Socket['write'];
}

/** Makes every Redis connection of this process die at `point` (see `CrashPoint`). */
export function installCrash(point: CrashPoint): void {
  const proto = Redis.prototype as unknown as {
    sendCommand(this: Redis, command: Command, stream?: unknown): unknown;
  };
  const send = proto.sendCommand;
  const counted = new WeakSet<Command>();
  let seen = 0;
  let target = point.skip;
  proto.sendCommand = function (command, stream) {
    const kind = kindOf(command);
    // A command counts when written: a connection that is not ready (a Cluster node's first use) queues
    // commands and sends them again once it is; one that never will (a Cluster's slot-map probe) never does.
    let hit = false;
    if (this.status === 'ready' && this.stream !== undefined && !counted.has(command)) {
      counted.add(command);
      hit = (point.phase === 'any' || kind === point.phase) && seen++ === target;
    }
    // (A pipeline's commands are written to this connection's socket together, after its last one.)
    if (hit && point.at === 'torn') tear(this.stream as Socket, point, kind);
    if (hit && point.at === 'reply')
      command.promise.then(
        () => die(point, kind),
        // E.g. NOSCRIPT: the client retries as EVAL, the next command of this phase.
        () => (target = seen),
      );
    const result = send.call(this, command, stream);
    if (hit && point.at === 'sent') process.nextTick(() => die(point, kind));
    return result;
  };
}
