// Process and process-group primitives read from /proc (Linux). Every function here is safe to call on a pid
// that has already gone: nothing throws for ESRCH, and zombies count as gone (PID 1 here may never reap them).
import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

export interface ProcStat {
  pid: number;
  /** One-letter state: R, S, D, Z, T ... */
  state: string;
  ppid: number;
  pgid: number;
  sid: number;
  /** Start time in clock ticks since boot (field 22 of /proc/PID/stat). */
  startTicks: number;
}

// USER_HZ is 100 on every Linux ABI Node supports; /proc exposes start times in these ticks.
const TICKS_PER_SECOND = 100;

/** Parses /proc/PID/stat; null when the process does not exist (or vanished while reading). */
export function readProcStat(pid: number): ProcStat | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // comm (field 2) may contain spaces and parentheses: everything after the LAST ')' is fixed-format.
  const close = text.lastIndexOf(')');
  if (close < 0) return null;
  const fields = text.slice(close + 2).split(' ');
  const state = fields[0];
  const ppid = Number(fields[1]);
  const pgid = Number(fields[2]);
  const sid = Number(fields[3]);
  const startTicks = Number(fields[19]);
  if (state === undefined || !Number.isFinite(pgid)) return null;
  return { pid, state, ppid, pgid, sid, startTicks };
}

/** Wall-clock time (ms since the epoch) at which pid started, or null when it does not exist. */
export function processStartTimeMs(pid: number): number | null {
  const stat = readProcStat(pid);
  if (!stat) return null;
  let uptimeSec: number;
  try {
    uptimeSec = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
  } catch {
    return null;
  }
  // Derived from uptime (10 ms resolution) rather than /proc/stat btime (whole seconds).
  const ageMs = uptimeSec * 1000 - (stat.startTicks * 1000) / TICKS_PER_SECOND;
  return Date.now() - ageMs;
}

/** True when pid exists and is not a zombie. */
export function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (error) {
    // EPERM: it exists, it just is not ours to signal.
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const stat = readProcStat(pid);
  // /proc unreadable but kill(0) succeeded: trust kill.
  return stat === null ? true : stat.state !== 'Z';
}

/** Live (non-zombie) members of process group pgid, from /proc/*\/stat. */
export function groupMembers(pgid: number): number[] {
  return listProcesses()
    .filter((p) => p.pgid === pgid && p.state !== 'Z')
    .map((p) => p.pid);
}

/** Live descendants of pid (children, grandchildren ...), whatever group they are in. */
export function descendants(pid: number): number[] {
  const all = listProcesses().filter((p) => p.state !== 'Z');
  const byParent = new Map<number, number[]>();
  for (const p of all) {
    const siblings = byParent.get(p.ppid) ?? [];
    siblings.push(p.pid);
    byParent.set(p.ppid, siblings);
  }
  const found: number[] = [];
  const queue = [...(byParent.get(pid) ?? [])];
  while (queue.length > 0) {
    const next = queue.shift() as number;
    found.push(next);
    queue.push(...(byParent.get(next) ?? []));
  }
  return found;
}

function listProcesses(): ProcStat[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  const result: ProcStat[] = [];
  for (const entry of entries) {
    const c = entry.charCodeAt(0);
    if (c < 48 || c > 57) continue;
    const stat = readProcStat(Number(entry));
    if (stat) result.push(stat);
  }
  return result;
}

/** The process group safe-restart itself runs in: never to be signalled as a whole. */
export function ownProcessGroup(): number {
  return readProcStat(process.pid)?.pgid ?? process.pid;
}

/**
 * Sends signal to every process in group pgid. Returns false when the group no longer exists (ESRCH).
 * Refuses pgid <= 1 and our own group: kill(-0) / kill(-1) would hit ourselves or everything.
 */
export function killGroup(pgid: number, signal: NodeJS.Signals): boolean {
  if (!Number.isInteger(pgid) || pgid <= 1) throw new RangeError(`refusing to signal process group ${pgid}`);
  if (pgid === ownProcessGroup()) throw new RangeError(`refusing to signal our own process group ${pgid}`);
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw error;
  }
}

/** Signals one pid; false when it no longer exists. */
export function killPid(pid: number, signal: NodeJS.Signals): boolean {
  if (!Number.isInteger(pid) || pid <= 1) throw new RangeError(`refusing to signal pid ${pid}`);
  try {
    process.kill(pid, signal);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw error;
  }
}

/** Polls until predicate() is true or timeoutMs passes; short first polls, then at most every 100 ms. */
export async function waitUntil(predicate: () => boolean, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
  const deadline = performance.now() + Math.max(0, timeoutMs);
  let delay = 5;
  for (;;) {
    if (predicate()) return true;
    const left = deadline - performance.now();
    if (left <= 0 || signal?.aborted) return predicate();
    try {
      await sleep(Math.min(delay, left), undefined, signal ? { signal } : undefined);
    } catch {
      return predicate();
    }
    delay = Math.min(delay * 2, 100);
  }
}

/** Resolves true once group pgid has no live member, false if members remain after timeoutMs. */
export async function waitForGroupGone(pgid: number, timeoutMs: number): Promise<boolean> {
  return waitUntil(() => groupMembers(pgid).length === 0, timeoutMs);
}

/** Reads a pidfile: the positive integer it holds, or null when it is missing, empty or not a pid. */
export function readPidfile(path: string): number | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return null;
  }
  const match = /^\s*(\d{1,10})\s*$/.exec(text);
  if (!match?.[1]) return null;
  const pid = Number(match[1]);
  return pid > 0 && pid <= 4_194_304 ? pid : null;
}
