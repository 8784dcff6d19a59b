import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { spawnDaemon } from '../../src/process/daemon.js';
import { groupMembers, isAlive, readProcStat } from '../../src/process/group.js';
import { stopByPidfile, type StopEvent } from '../../src/process/stop.js';
import { Cleanup, FIXTURES, pidsWithArg, waitFor } from './helpers.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

async function daemon(script: string, m: string, dir: string): Promise<{ pid: number; pidfile: string; log: string }> {
  const pidfile = join(dir, 'app.pid');
  const log = join(dir, 'app.log');
  const { pid, pgid } = await spawnDaemon({ argv: [join(FIXTURES, script), m], env: {}, log, pidfile });
  cleanup.group(pgid);
  // Ready once its child exists (and so its trap is set).
  await waitFor(() => pidsWithArg(m).length === 2);
  return { pid, pidfile, log };
}

describe('stopByPidfile', () => {
  it('stops a well-behaved service with its signal, children included, without escalating', async () => {
    const dir = cleanup.tempDir();
    const m = cleanup.marker();
    const { pid, pidfile } = await daemon('graceful.sh', m, dir);
    const events: StopEvent[] = [];
    const result = await stopByPidfile({ pidfile, signal: 'SIGTERM', graceMs: 15_000, timeoutMs: 30_000, onEvent: (e) => events.push(e) });
    expect(result).toMatchObject({ ok: true, pid, alreadyStopped: false, escalated: false });
    expect(events.map((e) => e.kind)).toEqual(['signalled', 'gone']);
    expect(events[0]?.detail).toContain(`process group ${pid}`);
    expect(groupMembers(pid)).toEqual([]);
    expect(pidsWithArg(m)).toEqual([]);
  });

  it('SIGKILLs a service that ignores SIGTERM, and its children, after the grace period', async () => {
    const dir = cleanup.tempDir();
    const m = cleanup.marker();
    const { pid, pidfile } = await daemon('ignore-term.sh', m, dir);
    const events: StopEvent[] = [];
    const result = await stopByPidfile({ pidfile, signal: 'SIGTERM', graceMs: 400, timeoutMs: 20_000, onEvent: (e) => events.push(e) });
    expect(result).toMatchObject({ ok: true, pid, alreadyStopped: false, escalated: true });
    expect(result.durationMs).toBeGreaterThanOrEqual(350);
    expect(events.map((e) => e.kind)).toEqual(['signalled', 'escalated', 'gone']);
    expect(groupMembers(pid)).toEqual([]);
    expect(pidsWithArg(m)).toEqual([]);
  });

  it('goes straight to SIGKILL when aborted during the grace period', async () => {
    const dir = cleanup.tempDir();
    const m = cleanup.marker();
    const { pid, pidfile } = await daemon('ignore-term.sh', m, dir);
    const controller = new AbortController();
    const result = await stopByPidfile({
      pidfile,
      signal: 'SIGTERM',
      graceMs: 120_000,
      timeoutMs: 180_000,
      signalAbort: controller.signal,
      onEvent: (e) => {
        if (e.kind === 'signalled') controller.abort();
      },
    });
    expect(result).toMatchObject({ ok: true, escalated: true });
    expect(result.durationMs).toBeLessThan(60_000);
    expect(groupMembers(pid)).toEqual([]);
  });

  it('treats a missing pidfile as already stopped', async () => {
    const dir = cleanup.tempDir();
    const events: StopEvent[] = [];
    const result = await stopByPidfile({ pidfile: join(dir, 'none.pid'), signal: 'SIGTERM', graceMs: 1_000, timeoutMs: 5_000, onEvent: (e) => events.push(e) });
    expect(result).toMatchObject({ ok: true, alreadyStopped: true, escalated: false });
    expect(events).toHaveLength(1);
    expect(events[0]?.kind).toBe('already-stopped');
    expect(events[0]?.detail).toContain('does not exist');
  });

  it('treats a dead pid as already stopped', async () => {
    const dir = cleanup.tempDir();
    const pidfile = join(dir, 'app.pid');
    const child = spawn('true', { stdio: 'ignore' });
    await once(child, 'exit');
    writeFileSync(pidfile, `${child.pid}\n`);
    const result = await stopByPidfile({ pidfile, signal: 'SIGTERM', graceMs: 1_000, timeoutMs: 5_000 });
    expect(result).toMatchObject({ ok: true, alreadyStopped: true, pid: child.pid });
  });

  it('does not signal a pid that started after the pidfile was written (a reused pid)', async () => {
    const dir = cleanup.tempDir();
    const m = cleanup.marker();
    const pidfile = join(dir, 'app.pid');
    const { pid, pgid } = await spawnDaemon({ argv: ['sleep', m], env: {}, pidfile });
    cleanup.group(pgid);
    // The pidfile claims to be an hour old: whatever now runs under that pid started later.
    const hourAgo = new Date(Date.now() - 3_600_000);
    utimesSync(pidfile, hourAgo, hourAgo);
    const events: StopEvent[] = [];
    const result = await stopByPidfile({ pidfile, signal: 'SIGKILL', graceMs: 1_000, timeoutMs: 5_000, onEvent: (e) => events.push(e) });
    expect(result).toMatchObject({ ok: true, alreadyStopped: true, pid });
    expect(events[0]?.detail).toContain('reused pid');
    expect(isAlive(pid)).toBe(true);
  });

  it('refuses a pidfile that holds no pid', async () => {
    const dir = cleanup.tempDir();
    const pidfile = join(dir, 'app.pid');
    writeFileSync(pidfile, 'not-a-pid\n');
    const result = await stopByPidfile({ pidfile, signal: 'SIGTERM', graceMs: 1_000, timeoutMs: 5_000 });
    expect(result).toMatchObject({ ok: false, alreadyStopped: false });
    expect(result.error?.code).toBe('PIDFILE_INVALID');
  });

  it('signals only the pid, not its group, when the pid does not lead a group', async () => {
    const dir = cleanup.tempDir();
    const m = cleanup.marker();
    const mWorker = cleanup.marker();
    const pidfile = join(dir, 'worker.pid');
    // A supervisor shell (group leader) with a worker in its group; the pidfile names the worker.
    const supervisor = spawn('/bin/sh', ['-c', `sleep ${mWorker} & echo $! > ${pidfile}; exec sleep ${m}`], {
      detached: true,
      stdio: 'ignore',
    });
    cleanup.group(supervisor.pid);
    await waitFor(() => pidsWithArg(m).length === 1 && pidsWithArg(mWorker).length === 1);
    const worker = pidsWithArg(mWorker)[0] as number;
    expect(readProcStat(worker)?.pgid).toBe(supervisor.pid);
    const result = await stopByPidfile({ pidfile, signal: 'SIGTERM', graceMs: 10_000, timeoutMs: 20_000 });
    expect(result).toMatchObject({ ok: true, pid: worker, escalated: false });
    expect(pidsWithArg(mWorker)).toEqual([]);
    expect(pidsWithArg(m)).toEqual([supervisor.pid]);
  });
});
