// Starts a long-running service detached in its own process group, output to its log, pid to its pidfile.
import { spawn } from 'node:child_process';
import { closeSync, openSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { groupMembers, killGroup, waitForGroupGone } from './group.js';
import { mergeEnv } from './step.js';
import { readFileTail } from './tail.js';

export interface DaemonSpec {
  argv: string[];
  cwd?: string;
  /** Layered over process.env. */
  env: Record<string, string>;
  /** Appended to; /dev/null when absent. */
  log?: string;
  pidfile: string;
  /** How long the child must stay up to count as started (default 50 ms). */
  settleMs?: number;
}

export type SpawnErrorCode = 'EINVAL' | 'ENOENT' | 'EACCES' | 'SPAWN_FAILED' | 'EXITED_IMMEDIATELY' | 'PIDFILE_WRITE_FAILED';

/** The daemon could not be started; `logTail` holds the end of its log when it wrote one. */
export class SpawnError extends Error {
  readonly code: SpawnErrorCode;
  readonly logTail: string;
  readonly pid: number | undefined;
  constructor(code: SpawnErrorCode, message: string, extra: { logTail?: string; pid?: number; cause?: unknown } = {}) {
    super(message, { cause: extra.cause });
    this.name = 'SpawnError';
    this.code = code;
    this.logTail = extra.logTail ?? '';
    this.pid = extra.pid;
  }
}

export const DAEMON_DEFAULTS = { settleMs: 50 } as const;

/** Writes `text` to path atomically: a temporary file in the same directory, then rename over it. */
export function writeFileAtomic(path: string, text: string): void {
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.${Date.now()}.tmp`);
  try {
    writeFileSync(temp, text, { mode: 0o644, flush: true });
    renameSync(temp, path);
  } catch (error) {
    rmSync(temp, { force: true });
    throw error;
  }
}

export interface SpawnedDaemon {
  pid: number;
  pgid: number;
  /** Settles when the process exits (safe-restart is its parent, so the exit status is known). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export async function spawnDaemon(spec: DaemonSpec): Promise<SpawnedDaemon> {
  const file = spec.argv[0];
  if (!file) throw new SpawnError('EINVAL', 'spawn: argv is empty');
  const what = spec.argv.join(' ');
  const logTail = (): string => (spec.log ? readFileTail(spec.log) : '');

  let out: number;
  try {
    out = openSync(spec.log ?? '/dev/null', 'a');
  } catch (error) {
    throw new SpawnError('SPAWN_FAILED', `spawn ${what}: cannot open log ${spec.log}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  let child;
  try {
    child = spawn(file, spec.argv.slice(1), {
      cwd: spec.cwd,
      env: mergeEnv(spec.env),
      detached: true,
      stdio: ['ignore', out, out],
    });
  } catch (error) {
    throw new SpawnError('SPAWN_FAILED', `spawn ${what}: ${(error as Error).message}`, { cause: error });
  } finally {
    closeSync(out);
  }

  const pid = child.pid;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  if (pid === undefined) {
    const error = await new Promise<NodeJS.ErrnoException>((resolve) => child.once('error', resolve));
    const code = error.code === 'ENOENT' || error.code === 'EACCES' ? error.code : 'SPAWN_FAILED';
    const where = spec.cwd ? ` (cwd ${spec.cwd})` : '';
    throw new SpawnError(code, `spawn ${what}${where}: ${error.message}`, { cause: error });
  }
  child.on('error', () => {});

  // Record the pid before anything else: if we die now, the pidfile still names what we started.
  try {
    writeFileAtomic(spec.pidfile, `${pid}\n`);
  } catch (error) {
    await killSpawned(pid);
    throw new SpawnError('PIDFILE_WRITE_FAILED', `spawn ${what}: cannot write pidfile ${spec.pidfile}: ${(error as Error).message}`, {
      pid,
      cause: error,
    });
  }

  const settleMs = spec.settleMs ?? DAEMON_DEFAULTS.settleMs;
  let settleTimer: NodeJS.Timeout | undefined;
  const early = await Promise.race([
    exited,
    new Promise<null>((resolve) => (settleTimer = setTimeout(() => resolve(null), settleMs))),
  ]);
  clearTimeout(settleTimer);
  if (early) {
    // A spawned service must stay in the foreground; whatever it left in its group is ours to clean up.
    await killSpawned(pid);
    rmSync(spec.pidfile, { force: true });
    const how = early.signal ? `was killed by ${early.signal}` : `exited with code ${early.code}`;
    const tail = logTail();
    const lastLine = tail.trim().split('\n').pop()?.slice(-200);
    const said = lastLine ? `; its log ends: ${lastLine}` : spec.log ? '' : ' (no log configured)';
    throw new SpawnError('EXITED_IMMEDIATELY', `spawn ${what}: ${how} within ${settleMs} ms of starting${said}`, {
      pid,
      logTail: tail,
    });
  }

  child.unref();
  return { pid, pgid: pid, exited };
}

async function killSpawned(pgid: number): Promise<void> {
  if (groupMembers(pgid).length === 0) return;
  killGroup(pgid, 'SIGKILL');
  await waitForGroupGone(pgid, 5_000);
}
