import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { Journal, JournalWriteError, digestJournal, findUnfinishedRun, readJournal } from '../../src/runner/journal.js';
import { currentLockInfo, inspectLock, releaseLock, takeOverDeadLock, tryCreateLock } from '../../src/runner/lock.js';
import { StateStore, ensurePrivateDir } from '../../src/runner/state.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sr-journal-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('journal', () => {
  it('writes intent before and done after, and the digest names what was in flight', () => {
    const path = join(dir, 'r.jsonl');
    const j = new Journal(path, 'run-1');
    j.write({ type: 'run', recipe: 'x', file: 'x.yaml', host: 'h', pid: 1, procStart: 1, startedAt: 'now', command: 'run', previousRelease: 'v1', targetRelease: 'v2' });
    j.write({ type: 'phase', phase: 'stop', status: 'started' });
    j.write({ type: 'intent', phase: 'stop', action: 'systemctl stop', detail: 'systemctl stop x' });
    j.write({ type: 'done', phase: 'stop', action: 'systemctl stop', ok: true, durationMs: 5, detail: 'exited 0' });
    j.write({ type: 'phase', phase: 'stop', status: 'finished', ok: true });
    j.write({ type: 'phase', phase: 'start', status: 'started' });
    j.write({ type: 'intent', phase: 'start', action: 'spawn', detail: 'node server.js' });
    j.write({ type: 'child', phase: 'start', action: 'spawn', pid: 42, pgid: 42, startTime: 7 });
    j.close();
    // a torn last line, as a SIGKILL mid-write would leave
    writeFileSync(path, readFileSync(path, 'utf8') + '{"ts":"2026', { flag: 'w' });
    const records = readJournal(path);
    expect(records.map((r) => r.seq)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    const d = digestJournal(records);
    expect(d.finished).toBe(false);
    expect(d.touched).toBe(true);
    expect(d.inFlight).toEqual({ phase: 'start', action: 'spawn' });
    expect(d.children).toEqual([{ pid: 42, pgid: 42, startTime: 7, action: 'spawn' }]);
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it('redacts every record before it reaches the disk', () => {
    const path = join(dir, 'r.jsonl');
    const j = new Journal(path, 'run-1', { redact: (t) => t.replaceAll('hunter2', '***') });
    j.write({ type: 'note', phase: 'stop', detail: 'password hunter2' });
    j.close();
    expect(readFileSync(path, 'utf8')).not.toContain('hunter2');
  });

  it('a failed write throws JournalWriteError so the side effect is not performed', () => {
    const j = new Journal(join(dir, 'r.jsonl'), 'run-1', {
      beforeWrite: () => {
        throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
      },
    });
    expect(() => j.write({ type: 'note', phase: 'stop', detail: 'x' })).toThrow(JournalWriteError);
    expect(j.tryWrite({ type: 'note', phase: 'stop', detail: 'x' })).toBe(false);
    j.close();
  });

  it('refuses to open a journal through a symlink', () => {
    writeFileSync(join(dir, 'elsewhere'), '');
    symlinkSync(join(dir, 'elsewhere'), join(dir, 'r.jsonl'));
    expect(() => new Journal(join(dir, 'r.jsonl'), 'run-1')).toThrow(JournalWriteError);
  });
  it('finds the newest unfinished run even when an older finished run of the same second sorts after it by name', () => {
    const write = (runId: string, startedAt: string, finished: boolean): void => {
      const j = new Journal(join(dir, `${runId}.jsonl`), runId);
      j.write({ type: 'run', recipe: 'x', file: '/x.yaml', host: 'h', pid: 1, procStart: 1, startedAt, command: 'run', previousRelease: 'v1', targetRelease: 'v2' });
      j.write({ type: 'intent', phase: 'stop', action: 'signal', detail: 'SIGTERM' });
      if (finished) j.write({ type: 'summary', summary: { outcome: 'rolled_back' } as never });
      j.close();
    };
    // a recover that finished at .100, then a run that started at .900 and died mid-stop: same second
    write('20261126T055036Z-ffffff', '2026-11-26T05:50:36.100Z', true);
    write('20261126T055036Z-000000', '2026-11-26T05:50:36.900Z', false);
    expect(findUnfinishedRun(dir)?.runId).toBe('20261126T055036Z-000000');
    // once a newer run finished, the older unfinished one is superseded
    write('20261126T055037Z-000001', '2026-11-26T05:50:37.000Z', true);
    expect(findUnfinishedRun(dir)).toBeNull();
  });
});

describe('lock', () => {
  it('is exclusive, identifies a live holder, and is released only by its owner', () => {
    const path = join(dir, 'lock');
    const me = currentLockInfo('run-a', 'run', '/j');
    expect(tryCreateLock(path, me)).toBe(true);
    expect(tryCreateLock(path, currentLockInfo('run-b', 'run', '/j'))).toBe(false);
    const seen = inspectLock(path);
    expect(seen.state).toBe('live');
    releaseLock(path, 'run-b');
    expect(existsSync(path)).toBe(true);
    releaseLock(path, 'run-a');
    expect(existsSync(path)).toBe(false);
  });

  it('recognises a dead holder and lets exactly one taker remove it', async () => {
    const child = spawn('true');
    const pid = await new Promise<number>((resolve) => child.on('exit', () => resolve(child.pid as number)));
    const path = join(dir, 'lock');
    const dead = { ...currentLockInfo('run-dead', 'run', '/j'), pid };
    writeFileSync(path, JSON.stringify(dead));
    const seen = inspectLock(path);
    expect(seen.state).toBe('dead');
    expect(takeOverDeadLock(path, dead)).toBe(true);
    expect(takeOverDeadLock(path, dead)).toBe(false);
  });

  it('treats a reused pid (different start time) as dead', () => {
    const path = join(dir, 'lock');
    writeFileSync(path, JSON.stringify({ ...currentLockInfo('run-x', 'run', '/j'), procStart: 1 }));
    expect(inspectLock(path).state).toBe('dead');
  });

  it('never follows a symlinked lock file', () => {
    writeFileSync(join(dir, 'target'), '');
    symlinkSync(join(dir, 'target'), join(dir, 'lock'));
    expect(tryCreateLock(join(dir, 'lock'), currentLockInfo('r', 'run', '/j'))).toBe(false);
    expect(() => inspectLock(join(dir, 'lock'))).toThrow(/symbolic link/);
  });
});

describe('state directory', () => {
  it('is created 0700 and warns when world-writable', () => {
    const root = join(dir, 'state');
    const store = new StateStore(root);
    expect(store.prepare('svc')).toEqual([]);
    expect(statSync(root).mode & 0o777).toBe(0o700);
    const open = join(dir, 'open');
    mkdirSync(open, { mode: 0o777 });
    // mkdir honours the umask: set the mode explicitly
    chmodSync(open, 0o777);
    expect(ensurePrivateDir(open)[0]).toMatch(/world-writable/);
  });

  it('records the last good release durably', () => {
    const store = new StateStore(join(dir, 'state'));
    store.prepare('svc');
    expect(store.readRecipeState('svc').lastGoodRelease).toBeNull();
    store.writeRecipeState('svc', { lastGoodRelease: 'v2', lastGoodRunId: 'r', updatedAt: 'now' });
    expect(store.readRecipeState('svc').lastGoodRelease).toBe('v2');
  });
});


