// One run per recipe at a time. The lock file is created with O_EXCL (never through a symlink);
// its holder is identified by pid + process start time, so a reused pid is not mistaken for it.
import { closeSync, constants, openSync, readFileSync, unlinkSync, writeSync, fsyncSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { PreflightError } from '../errors.js';

export interface LockInfo {
  runId: string;
  command: 'run' | 'recover';
  pid: number;
  procStart: number | null;
  host: string;
  startedAt: string;
  journal: string;
}

export type LockState = { state: 'free' } | { state: 'live'; info: LockInfo } | { state: 'dead'; info: LockInfo; why: string };

/** Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat), or null. */
export function procStartTime(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name may contain spaces and parentheses: split after the last ')'
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const value = Number(fields[19]);
    return Number.isFinite(value) ? value : null;
  } catch {
    return null;
  }
}

export function currentLockInfo(runId: string, command: 'run' | 'recover', journal: string): LockInfo {
  return { runId, command, pid: process.pid, procStart: procStartTime(process.pid), host: hostname(), startedAt: new Date().toISOString(), journal };
}

function readLock(path: string): LockInfo | null {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    if (code === 'ELOOP') throw new PreflightError('SR_LOCK_SYMLINK', `lock file ${path} is a symbolic link: refusing to follow it – remove it; nothing was touched`);
    throw error;
  }
  try {
    const text = readFileSync(fd, 'utf8');
    return JSON.parse(text) as LockInfo;
  } catch {
    // a holder killed between create and write leaves an empty file: judge it by its age below
    const st = statSync(path);
    return { runId: 'unknown', command: 'run', pid: 0, procStart: null, host: hostname(), startedAt: st.mtime.toISOString(), journal: '' };
  } finally {
    closeSync(fd);
  }
}

export function inspectLock(path: string): LockState {
  const info = readLock(path);
  if (!info) return { state: 'free' };
  if (info.host !== hostname()) return { state: 'live', info };
  if (info.pid === 0) {
    const ageMs = Date.now() - Date.parse(info.startedAt);
    return ageMs > 5_000 ? { state: 'dead', info, why: 'empty lock file left by a holder that died while creating it' } : { state: 'live', info };
  }
  const start = procStartTime(info.pid);
  if (start === null) return { state: 'dead', info, why: `pid ${info.pid} is not running` };
  if (info.procStart !== null && start !== info.procStart) return { state: 'dead', info, why: `pid ${info.pid} now belongs to another process` };
  return { state: 'live', info };
}

/** Try to create the lock; false when it exists. */
export function tryCreateLock(path: string, info: LockInfo): boolean {
  let fd: number;
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw new PreflightError('SR_LOCK_CREATE', `cannot create the lock file ${path}: ${(error as Error).message} – nothing was touched`, { cause: error });
  }
  try {
    writeSync(fd, JSON.stringify(info));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return true;
}

/**
 * Remove a dead holder's lock. A short-lived guard file (also O_EXCL) makes sure two runs
 * taking over at once cannot both succeed: each re-inspects under the guard.
 */
export function takeOverDeadLock(path: string, dead: LockInfo): boolean {
  const guard = `${path}.takeover`;
  const me = currentLockInfo(dead.runId, 'run', '');
  if (!tryCreateLock(guard, me)) {
    const g = inspectLock(guard);
    if (g.state === 'dead') {
      try {
        unlinkSync(guard);
      } catch {
        // someone else cleaned it
      }
    }
    return false;
  }
  try {
    const now = inspectLock(path);
    if (now.state === 'dead' && now.info.runId === dead.runId && now.info.pid === dead.pid) {
      unlinkSync(path);
      return true;
    }
    return false;
  } finally {
    try {
      unlinkSync(guard);
    } catch {
      // guard already gone
    }
  }
}

/** Remove the lock if it is still ours. */
export function releaseLock(path: string, runId: string): void {
  try {
    const info = readLock(path);
    if (info && info.runId === runId && info.pid === process.pid) unlinkSync(path);
  } catch {
    // nothing to release
  }
}
