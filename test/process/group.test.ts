import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  groupMembers,
  isAlive,
  killGroup,
  processStartTimeMs,
  readPidfile,
  readProcStat,
  waitForGroupGone,
} from '../../src/process/group.js';
import { Cleanup, pidsWithArg, waitFor } from './helpers.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

describe('process group primitives', () => {
  it('lists, signals and waits out a group we created', async () => {
    const m = cleanup.marker();
    const child = spawn('/bin/sh', ['-c', `sleep ${m} & sleep ${m}`], { detached: true, stdio: 'ignore' });
    const exited = once(child, 'exit');
    const pgid = child.pid as number;
    cleanup.group(pgid);
    await waitFor(() => pidsWithArg(m).length === 2);

    const members = groupMembers(pgid);
    expect(members).toContain(pgid);
    for (const pid of pidsWithArg(m)) expect(members).toContain(pid);
    expect(readProcStat(pgid)?.pgid).toBe(pgid);
    expect(isAlive(pgid)).toBe(true);
    const startMs = processStartTimeMs(pgid) as number;
    expect(Math.abs(Date.now() - startMs)).toBeLessThan(60_000);

    expect(killGroup(pgid, 'SIGTERM')).toBe(true);
    expect(await waitForGroupGone(pgid, 10_000)).toBe(true);
    await exited;
    expect(isAlive(pgid)).toBe(false);
    expect(pidsWithArg(m)).toEqual([]);
  });

  it('killGroup answers false, not an error, for a group that no longer exists', async () => {
    const child = spawn('true', { detached: true, stdio: 'ignore' });
    await once(child, 'exit');
    expect(killGroup(child.pid as number, 'SIGKILL')).toBe(false);
  });

  it('refuses to signal group 0, 1 or our own group', () => {
    expect(() => killGroup(0, 'SIGTERM')).toThrow(RangeError);
    expect(() => killGroup(1, 'SIGTERM')).toThrow(RangeError);
    const own = readProcStat(process.pid)?.pgid as number;
    expect(() => killGroup(own, 'SIGTERM')).toThrow(RangeError);
  });

  it('isAlive: true for us, false for nonsense and for a process that exited', async () => {
    expect(isAlive(process.pid)).toBe(true);
    expect(isAlive(0)).toBe(false);
    expect(isAlive(-5)).toBe(false);
    const child = spawn('true', { stdio: 'ignore' });
    await once(child, 'exit');
    expect(isAlive(child.pid as number)).toBe(false);
  });

  it('readPidfile: a pid, or null for missing, empty and garbage files', () => {
    const dir = cleanup.tempDir();
    const file = join(dir, 'pid');
    expect(readPidfile(file)).toBeNull();
    writeFileSync(file, '');
    expect(readPidfile(file)).toBeNull();
    writeFileSync(file, 'abc\n');
    expect(readPidfile(file)).toBeNull();
    writeFileSync(file, '12 34\n');
    expect(readPidfile(file)).toBeNull();
    writeFileSync(file, '0\n');
    expect(readPidfile(file)).toBeNull();
    writeFileSync(file, ' 4242\n');
    expect(readPidfile(file)).toBe(4242);
  });
});
