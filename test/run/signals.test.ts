// Interrupts, concurrent runs and crashes of safe-restart itself, through the real CLI.
import { describe, expect, it } from 'vitest';
import { sandboxPerTest, summaryOf } from '../support/sandbox.js';

const setup = sandboxPerTest();



describe('interrupts and crashes', () => {
  it('SIGINT before stop: exit 1, untouched (same pid still answering)', async () => {
    const s = await setup();
    const oldPid = await s.startCurrent();
    await s.stopDependency();
    const deps = `  - name: fake-db\n    tcp: 127.0.0.1:${s.depPort}\n    timeout: 30s`;
    const run = s.start(['run', s.recipe({ dependencies: deps }), '--release', 'v2']);
    await run.waitForEvent((e) => e.event === 'check_started' && e.phase === 'dependencies');
    run.child.kill('SIGINT');
    const r = await run.done;
    expect(r.code).toBe(1);
    expect((summaryOf(r).summary as { description: string }).description).toMatch(/interrupted by SIGINT.*nothing was touched/);
    expect(s.pid()).toBe(oldPid);
    expect((await s.health())?.body).toMatch(new RegExp(`^ok v1 ${oldPid}`));
    await s.stopService();
  });

  it('SIGINT during gates: rolled back, exit 2', async () => {
    const s = await setup({ v1: {}, v3: { broken: true } });
    await s.startCurrent();
    const gates = `  - name: healthz\n    http: http://127.0.0.1:${s.port}/healthz\n    timeout: 30s`;
    const run = s.start(['run', s.recipe({ gates }), '--release', 'v3']);
    await run.waitForEvent((e) => e.event === 'check_started' && e.phase === 'gates');
    run.child.kill('SIGINT');
    const r = await run.done;
    expect(r.code, r.stderr).toBe(2);
    expect((summaryOf(r).summary as { description: string }).description).toMatch(/interrupted by SIGINT during gates.*rolled back to release v1/);
    expect((await s.health())?.body).toMatch(/^ok v1 /);
    await s.stopService();
  });

  it('a second SIGINT during the rollback abandons it: exit 3, and says so', async () => {
    const s = await setup({ v1: {}, v3: { broken: true } });
    await s.startCurrent();
    const gates = `  - name: healthz\n    http: http://127.0.0.1:${s.port}/healthz\n    initial_delay: 1s\n    timeout: 30s`;
    const run = s.start(['run', s.recipe({ gates }), '--release', 'v3']);
    await run.waitForEvent((e) => e.event === 'check_started' && e.phase === 'gates');
    run.child.kill('SIGINT');
    await run.waitForEvent((e) => e.event === 'check_started' && e.phase === 'rollback_gates');
    run.child.kill('SIGINT');
    const r = await run.done;
    expect(r.code, r.stderr).toBe(3);
    expect((summaryOf(r).summary as { description: string }).description).toMatch(/interrupted by SIGINT/);
    await s.stopService();
  });

  it('two concurrent runs: the second gets exit 4 naming the holder', async () => {
    const s = await setup();
    await s.startCurrent();
    await s.stopDependency();
    const deps = `  - name: fake-db\n    tcp: 127.0.0.1:${s.depPort}\n    timeout: 30s`;
    const file = s.recipe({ dependencies: deps });
    const first = s.start(['run', file, '--release', 'v2']);
    await first.waitForEvent((e) => e.event === 'check_started');
    const second = await s.cli(['run', file, '--release', 'v2'], { json: false });
    expect(second.code).toBe(4);
    expect(second.stderr).toMatch(new RegExp(`holds the lock: pid ${first.child.pid} on .*, started `));
    first.child.kill('SIGINT');
    expect((await first.done).code).toBe(1);
    await s.stopService();
  });

  it('SIGKILL of safe-restart during gates: the next run exits 4, recover brings the previous release back (exit 2)', async () => {
    const s = await setup({ v1: {}, v3: { broken: true } });
    await s.startCurrent();
    const gates = `  - name: healthz\n    http: http://127.0.0.1:${s.port}/healthz\n    timeout: 30s`;
    const file = s.recipe({ gates });
    const run = s.start(['run', file, '--release', 'v3']);
    await run.waitForEvent((e) => e.event === 'check_started' && e.phase === 'gates');
    run.child.kill('SIGKILL');
    await run.done;
    // the journal tells which phase was in flight
    const [records] = s.journals();
    expect(records?.some((r) => r.type === 'summary')).toBe(false);
    expect(records?.filter((r) => r.type === 'phase').at(-1)).toMatchObject({ phase: 'gates', status: 'started' });

    const next = await s.cli(['run', file, '--release', 'v3'], { json: false });
    expect(next.code).toBe(4);
    expect(next.stderr).toMatch(/died during gates.*safe-restart recover/);

    const rec = await s.cli(['recover', file]);
    expect(rec.code, rec.stderr).toBe(2);
    expect((await s.health())?.body).toMatch(/^ok v1 /);
    expect(s.currentRelease()).toBe('v1');
    // after recover, runs are allowed again
    const after = await s.cli(['run', file]);
    expect(after.code, after.stderr).toBe(0);
    await s.stopService();
  });
});
