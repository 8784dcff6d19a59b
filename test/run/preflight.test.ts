// `safe-restart preflight`: would a run go ahead now? Through the real CLI; nothing may be touched.
import { describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { procStartTime } from '../../src/runner/lock.js';
import { sandboxPerTest, type CliResult, type Sandbox } from '../support/sandbox.js';

const setup = sandboxPerTest();

interface Report {
  exitCode: number;
  ok: boolean;
  reason: string | null;
  previousRelease: string | null;
  targetRelease: string | null;
  targetExists: boolean | null;
  rollbackReady: { ok: boolean; detail: string } | null;
  lock: { state: string; detail?: string };
  dependencies: Array<{ name: string; status: string }>;
  verify: Array<{ name: string; ok: boolean }>;
  worstCase: { totalMs: number; forwardMs: number; rollbackMs: number };
}

const report = (r: CliResult): Report => JSON.parse(r.stdout) as Report;

function untouched(s: Sandbox, pid: number | null): void {
  expect(s.pid()).toBe(pid);
  expect(s.currentRelease()).toBe('v1');
  // no journal of a run, no lock left
  expect(s.journals()).toEqual([]);
  expect(existsSync(join(s.stateDir, 'svc', 'lock'))).toBe(false);
}

describe('safe-restart preflight', () => {
  it('exit 0 with its JSON: releases, target exists, rollback ready, every check, the worst case', async () => {
    const s = await setup();
    const pid = await s.startCurrent();
    const verify = `  - name: target-has-server\n    run: ["test", "-f", "${s.dir}/releases/\${SAFE_RESTART_RELEASE}/server.mjs"]`;
    const r = await s.cli(['preflight', s.recipe({ verify }), '--release', 'v2'], { json: true });
    expect(r.code, r.stderr).toBe(0);
    const rep = report(r);
    expect(rep).toMatchObject({ exitCode: 0, ok: true, reason: null, previousRelease: 'v1', targetRelease: 'v2', targetExists: true, rollbackReady: { ok: true }, lock: { state: 'free' } });
    expect(rep.dependencies).toEqual([expect.objectContaining({ name: 'fake-db', status: 'ready' })]);
    expect(rep.verify).toEqual([expect.objectContaining({ name: 'target-has-server', ok: true })]);
    // defaults: dependency 2s+1s, stop 3s grace within a 60s step timeout, gates 3s+1s … and the rollback after them
    expect(rep.worstCase.totalMs).toBeGreaterThan(rep.worstCase.forwardMs);
    expect(rep.worstCase.rollbackMs).toBeGreaterThan(0);
    untouched(s, pid);
    const human = await s.cli(['preflight', s.recipe({ verify }), '--release', 'v2'], { json: false });
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/a run would go ahead now/);
    expect(human.stdout).toMatch(/worst case: /);
    await s.stopService();
  });

  it('exit 1 when a dependency is down, and when the target is missing', async () => {
    const s = await setup();
    const pid = await s.startCurrent();
    await s.stopDependency();
    const down = await s.cli(['preflight', s.recipe(), '--release', 'v2']);
    expect(down.code).toBe(1);
    expect(report(down)).toMatchObject({ ok: false, reason: expect.stringMatching(/fake-db.*ECONNREFUSED/), dependencies: [expect.objectContaining({ status: 'failed' })] });
    await s.startDependency();
    const missing = await s.cli(['preflight', s.recipe(), '--release', 'v9']);
    expect(missing.code).toBe(1);
    expect(report(missing)).toMatchObject({ targetExists: false, reason: expect.stringMatching(/release v9 not found/) });
    untouched(s, pid);
    await s.stopService();
  });

  it('exit 4 when a live run holds the lock, and when an unfinished run needs recover', async () => {
    const s = await setup();
    const pid = await s.startCurrent();
    const dir = join(s.stateDir, 'svc');
    mkdirSync(join(dir, 'runs'), { recursive: true, mode: 0o700 });
    // this test process plays the live holder: its pid and start time are real
    const holder = { runId: '20261202T000000Z-aaaaaa', command: 'run', pid: process.pid, procStart: procStartTime(process.pid), host: hostname(), startedAt: new Date().toISOString(), journal: '' };
    writeFileSync(join(dir, 'lock'), JSON.stringify(holder), { mode: 0o600 });
    const held = await s.cli(['preflight', s.recipe(), '--release', 'v2']);
    expect(held.code).toBe(4);
    expect(report(held)).toMatchObject({ lock: { state: 'held' }, reason: expect.stringMatching(new RegExp(`holds the lock: pid ${process.pid}`)) });
    // a dead run that stopped the service and never finished
    rmSync(join(dir, 'lock'));
    const runId = '20261202T000001Z-bbbbbb';
    const lines = [
      { ts: new Date().toISOString(), runId, seq: 1, type: 'run', recipe: 'svc', file: join(s.dir, 'svc.yaml'), host: hostname(), pid: 1, procStart: null, startedAt: new Date().toISOString(), command: 'run', previousRelease: 'v1', targetRelease: 'v2' },
      { ts: new Date().toISOString(), runId, seq: 2, type: 'phase', phase: 'stop', status: 'started' },
      { ts: new Date().toISOString(), runId, seq: 3, type: 'intent', phase: 'stop', action: 'signal', detail: 'SIGTERM' },
    ];
    writeFileSync(join(dir, 'runs', `${runId}.jsonl`), `${lines.map((l) => JSON.stringify(l)).join('\n')}\n`);
    const unfinished = await s.cli(['preflight', s.recipe(), '--release', 'v2']);
    expect(unfinished.code).toBe(4);
    expect(report(unfinished)).toMatchObject({ lock: { state: 'unfinished' }, reason: expect.stringMatching(/never finished.*safe-restart recover/) });
    expect(s.pid()).toBe(pid);
    await s.stopService();
  });

  it('plan --json says whether the target exists and carries the worst case', async () => {
    const s = await setup();
    const r = await s.cli(['plan', s.recipe(), '--release', 'v9'], { json: true });
    expect(r.code, r.stderr).toBe(0);
    const plan = JSON.parse(r.stdout) as { release: { targetExists: boolean }; worstCase: { totalMs: number } };
    expect(plan.release.targetExists).toBe(false);
    expect(plan.worstCase.totalMs).toBeGreaterThan(0);
  });
});
