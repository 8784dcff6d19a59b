import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { spawnDaemon, SpawnError } from '../../src/process/daemon.js';
import { groupMembers, isAlive, readPidfile, readProcStat } from '../../src/process/group.js';
import { Cleanup, pidsWithArg, waitFor } from './helpers.js';

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

describe('spawnDaemon', () => {
  it('starts detached in its own group and session, writes the pidfile atomically, logs to the file', async () => {
    const dir = cleanup.tempDir();
    const m = cleanup.marker();
    const log = join(dir, 'app.log');
    const pidfile = join(dir, 'app.pid');
    const { pid, pgid } = await spawnDaemon({
      argv: ['/bin/sh', '-c', `echo "hello $GREETING from $(pwd)"; echo oops >&2; exec sleep ${m}`],
      cwd: dir,
      env: { GREETING: 'world' },
      log,
      pidfile,
    });
    cleanup.group(pgid);
    expect(pgid).toBe(pid);
    expect(readPidfile(pidfile)).toBe(pid);
    expect(readdirSync(dir).sort()).toEqual(['app.log', 'app.pid']);
    const stat = readProcStat(pid);
    expect(stat).toMatchObject({ pgid: pid, sid: pid });
    await waitFor(() => pidsWithArg(m).includes(pid));
    expect(isAlive(pid)).toBe(true);
    expect(readFileSync(log, 'utf8')).toBe(`hello world from ${dir}\noops\n`);
  });

  it('appends to an existing log and defaults to /dev/null without one', async () => {
    const dir = cleanup.tempDir();
    const m = cleanup.marker();
    const quiet = await spawnDaemon({ argv: ['sleep', m], env: {}, pidfile: join(dir, 'q.pid') });
    cleanup.group(quiet.pgid);
    expect(groupMembers(quiet.pgid)).toEqual([quiet.pid]);
    expect(readProcStat(quiet.pid)?.state).not.toBe('Z');
  });

  it('reports a child that dies at once, with its log tail, and leaves no pidfile or process behind', async () => {
    const dir = cleanup.tempDir();
    const m = cleanup.marker();
    const pidfile = join(dir, 'app.pid');
    const error = await spawnDaemon({
      // It leaves a background child behind in its group: that must be cleaned up too.
      argv: ['/bin/sh', '-c', `sleep ${m} & echo "config invalid: port missing" >&2; exit 3`],
      env: {},
      log: join(dir, 'app.log'),
      pidfile,
      settleMs: 3_000,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SpawnError);
    const spawnError = error as SpawnError;
    cleanup.group(spawnError.pid);
    expect(spawnError.code).toBe('EXITED_IMMEDIATELY');
    expect(spawnError.message).toContain('exited with code 3');
    expect(spawnError.logTail).toContain('config invalid: port missing');
    expect(spawnError.message).toContain('its log ends: config invalid: port missing');
    expect(existsSync(pidfile)).toBe(false);
    expect(pidsWithArg(m)).toEqual([]);
  });

  it('reports a missing binary as ENOENT and writes no pidfile', async () => {
    const dir = cleanup.tempDir();
    const pidfile = join(dir, 'app.pid');
    const error = await spawnDaemon({ argv: ['/nonexistent/daemon'], env: {}, pidfile }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SpawnError);
    expect((error as SpawnError).code).toBe('ENOENT');
    expect(existsSync(pidfile)).toBe(false);
  });
});
