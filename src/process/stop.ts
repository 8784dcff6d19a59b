// Stops the process a pidfile names: verify it is plausibly that process, signal it (its group when it leads
// one), wait up to the grace period, then SIGKILL and wait until it is gone.
import { statSync } from 'node:fs';
import {
  descendants,
  groupMembers,
  killGroup,
  killPid,
  ownProcessGroup,
  processStartTimeMs,
  readPidfile,
  readProcStat,
  waitUntil,
} from './group.js';

export interface StopEvent {
  kind: 'signalled' | 'escalated' | 'gone' | 'already-stopped';
  pid?: number;
  detail: string;
}

export interface StopByPidfileSpec {
  pidfile: string;
  signal: NodeJS.Signals;
  graceMs: number;
  /** Bounds the whole stop; the wait after SIGKILL gets at least STOP_DEFAULTS.minReapMs. */
  timeoutMs: number;
  /** Aborting skips what is left of the grace period and goes straight to SIGKILL. */
  signalAbort?: AbortSignal;
  onEvent?: (e: StopEvent) => void;
}

export interface StopResult {
  ok: boolean;
  pid?: number;
  alreadyStopped: boolean;
  escalated: boolean;
  durationMs: number;
  error?: { code: string; message: string };
}

export const STOP_DEFAULTS = {
  /** A process started this long after its pidfile was written still counts as the one it names (clock slack). */
  startSlackMs: 1_000,
  /** Even when the grace period used up the timeout, SIGKILL gets this long to take effect. */
  minReapMs: 1_000,
} as const;

export async function stopByPidfile(spec: StopByPidfileSpec): Promise<StopResult> {
  const started = performance.now();
  const elapsed = (): number => performance.now() - started;
  const emit = (e: StopEvent): void => {
    try {
      spec.onEvent?.(e);
    } catch {
      // a reporting callback must not change what happens to the process
    }
  };
  const done = (fields: Omit<StopResult, 'durationMs' | 'alreadyStopped' | 'escalated'> & Partial<StopResult>): StopResult => ({
    alreadyStopped: false,
    escalated: false,
    ...fields,
    durationMs: Math.round(elapsed()),
  });
  const alreadyStopped = (detail: string, pid?: number): StopResult => {
    emit({ kind: 'already-stopped', pid, detail });
    return done({ ok: true, pid, alreadyStopped: true });
  };

  let pidfileMtimeMs: number;
  try {
    pidfileMtimeMs = statSync(spec.pidfile).mtimeMs;
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    if (e.code === 'ENOENT') return alreadyStopped(`pidfile ${spec.pidfile} does not exist`);
    return done({ ok: false, error: { code: 'PIDFILE_UNREADABLE', message: `cannot read pidfile ${spec.pidfile}: ${e.message}` } });
  }
  const pid = readPidfile(spec.pidfile);
  // Unknown is not stopped: an unreadable pidfile fails the stop rather than guessing.
  if (pid === null) {
    return done({ ok: false, error: { code: 'PIDFILE_INVALID', message: `pidfile ${spec.pidfile} does not hold a pid` } });
  }
  if (pid === 1 || pid === process.pid) {
    return done({
      ok: false,
      pid,
      error: { code: 'PIDFILE_INVALID', message: `pidfile ${spec.pidfile} names pid ${pid}, which is ${pid === 1 ? 'init' : 'safe-restart itself'}` },
    });
  }

  const stat = readProcStat(pid);
  if (!stat || stat.state === 'Z') return alreadyStopped(`pid ${pid} from ${spec.pidfile} is not running`, pid);
  const startMs = processStartTimeMs(pid);
  if (startMs !== null && startMs > pidfileMtimeMs + STOP_DEFAULTS.startSlackMs) {
    return alreadyStopped(
      `pid ${pid} started at ${new Date(startMs).toISOString()}, after ${spec.pidfile} was written ` +
        `(${new Date(pidfileMtimeMs).toISOString()}): a reused pid, not the service – not signalled`,
      pid,
    );
  }

  // Signal the whole group only when the pid leads it, and never the group safe-restart runs in.
  const leadsGroup = stat.pgid === pid && pid !== ownProcessGroup();
  const isSameProcess = (p: number, startTicks: number): boolean => {
    const s = readProcStat(p);
    return s !== null && s.state !== 'Z' && s.startTicks === startTicks;
  };
  const gone = leadsGroup ? () => groupMembers(pid).length === 0 : () => !isSameProcess(pid, stat.startTicks);
  const target = leadsGroup ? `process group ${pid}` : `pid ${pid}`;

  try {
    const delivered = leadsGroup ? killGroup(pid, spec.signal) : killPid(pid, spec.signal);
    if (!delivered) {
      emit({ kind: 'gone', pid, detail: `pid ${pid} exited before it could be signalled` });
      return done({ ok: true, pid });
    }
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    return done({ ok: false, pid, error: { code: e.code ?? 'EKILL', message: `cannot send ${spec.signal} to ${target}: ${e.message}` } });
  }
  emit({ kind: 'signalled', pid, detail: `sent ${spec.signal} to ${target} (from ${spec.pidfile})` });

  const graceMs = Math.max(0, Math.min(spec.graceMs, spec.timeoutMs));
  if (await waitUntil(gone, graceMs, spec.signalAbort)) {
    emit({ kind: 'gone', pid, detail: `${target} exited after ${spec.signal} in ${Math.round(elapsed())} ms` });
    return done({ ok: true, pid });
  }

  // Not a group leader: its children share someone else's group, so kill them by ancestry, snapshot now.
  const victims = leadsGroup ? [] : descendants(pid).flatMap((p) => {
    const s = readProcStat(p);
    return s ? [{ pid: p, startTicks: s.startTicks }] : [];
  });
  const why = spec.signalAbort?.aborted ? 'aborted during the grace period' : `still running after ${graceMs} ms grace`;
  try {
    if (leadsGroup) {
      if (!gone()) killGroup(pid, 'SIGKILL');
    } else {
      for (const v of [{ pid, startTicks: stat.startTicks }, ...victims]) {
        if (isSameProcess(v.pid, v.startTicks)) killPid(v.pid, 'SIGKILL');
      }
    }
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    return done({ ok: false, pid, escalated: true, error: { code: e.code ?? 'EKILL', message: `cannot SIGKILL ${target}: ${e.message}` } });
  }
  emit({ kind: 'escalated', pid, detail: `${target} ${why}: sent SIGKILL` });

  const allGone = leadsGroup ? gone : () => gone() && victims.every((v) => !isSameProcess(v.pid, v.startTicks));
  const reapMs = Math.max(STOP_DEFAULTS.minReapMs, spec.timeoutMs - elapsed());
  if (await waitUntil(allGone, reapMs)) {
    emit({ kind: 'gone', pid, detail: `${target} gone after SIGKILL in ${Math.round(elapsed())} ms` });
    return done({ ok: true, pid, escalated: true });
  }
  const left = leadsGroup ? groupMembers(pid) : [pid, ...victims.map((v) => v.pid)].filter((p) => readProcStat(p) !== null);
  return done({
    ok: false,
    pid,
    escalated: true,
    error: {
      code: 'STOP_TIMEOUT',
      message: `${target} still has process(es) ${left.join(', ')} ${Math.round(elapsed())} ms after ${spec.signal} and SIGKILL (timeout ${spec.timeoutMs} ms)`,
    },
  });
}
