// `recover` and `status` when nothing was interrupted, through the real CLI against a real service: recover
// says what the journals say and touches nothing (unless --force); status headlines a run that needs a human.
import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sandboxPerTest, summaryOf } from '../support/sandbox.js';

const setup = sandboxPerTest();

describe('safe-restart recover with nothing unfinished', () => {
  it('after a successful run: says so, exit 0, the same pid still serving; --force restarts as before (exit 2)', async () => {
    const s = await setup();
    await s.startCurrent();
    const file = s.recipe();
    const run = await s.cli(['run', file, '--release', 'v2']);
    expect(run.code, run.stderr).toBe(0);
    const pid = s.pid();
    const journals = s.journalFiles().length;

    const plain = await s.cli(['recover', file], { json: false });
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout).toBe('nothing to recover: the last run of svc finished (succeeded, v2)\n');
    expect(s.pid()).toBe(pid);
    expect((await s.health())?.body).toMatch(new RegExp(`^ok v2 ${pid}`));
    expect(s.journalFiles()).toHaveLength(journals);

    const json = await s.cli(['recover', file]);
    expect(json.code, json.stderr).toBe(0);
    expect(json.stdout.trim().split('\n')).toHaveLength(1);
    expect(json.events).toEqual([
      expect.objectContaining({
        event: 'nothing_to_recover',
        recipe: 'svc',
        message: 'nothing to recover: the last run of svc finished (succeeded, v2)',
        lastRun: expect.objectContaining({ runId: summaryOf(run).runId, outcome: 'succeeded', exitCode: 0, targetRelease: 'v2', evidence: null }),
      }),
    ]);
    expect(s.pid()).toBe(pid);
    expect(s.journalFiles()).toHaveLength(journals);

    const forced = await s.cli(['recover', file, '--force']);
    expect(forced.code, forced.stderr).toBe(2);
    expect(summaryOf(forced).summary).toMatchObject({ outcome: 'rolled_back', targetRelease: 'v2' });
    expect(s.pid()).not.toBe(pid);
    expect((await s.health())?.body).toMatch(/^ok v2 /);
    await s.stopService();
  });

  it('with no run recorded at all: says so and exits 0, the service untouched', async () => {
    const s = await setup();
    const pid = await s.startCurrent();
    const r = await s.cli(['recover', s.recipe()], { json: false });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`nothing to recover: no run of svc is recorded in ${s.stateDir}\n`);
    expect(s.pid()).toBe(pid);
    expect((await s.health())?.body).toMatch(new RegExp(`^ok v1 ${pid}`));
    await s.stopService();
  });
});

describe('status and history after a run that needs a human (exit 3)', () => {
  it('status headlines FAILED with the time, names the evidence and the recipe file; history --json carries the evidence', async () => {
    const s = await setup({ v1: {} });
    await s.startCurrent();
    const file = s.recipe();
    const good = await s.cli(['run', file]);
    expect(good.code, good.stderr).toBe(0);
    // an in-place restart whose gates fail has nothing to roll back to
    writeFileSync(join(s.dir, 'releases', 'v1', 'BROKEN'), '1');
    const failed = await s.cli(['run', file]);
    expect(failed.code, failed.stderr).toBe(3);
    const summary = summaryOf(failed).summary as { runId: string; evidence: string; startedAt: string; durationMs: number };
    expect(summary.evidence).toMatch(/\/evidence\//);
    const since = new Date(Date.parse(summary.startedAt) + summary.durationMs).toISOString();

    const history = JSON.parse((await s.cli(['history', '--json'], { json: false })).stdout) as { runs: Array<Record<string, unknown>> };
    expect(history.runs.map((r) => [r.outcome, r.evidence])).toEqual([
      ['failed', summary.evidence],
      ['succeeded', null],
    ]);

    const text = await s.cli(['status'], { json: false });
    expect(text.code).toBe(0);
    const lines = text.stdout.split('\n');
    expect(lines[0]).toBe(`svc: FAILED – needs a human since ${since.replace('T', ' ').replace(/\.\d+Z$/, 'Z')}`);
    expect(text.stdout).toContain(`  evidence: ${summary.evidence}`);
    expect(text.stdout).toContain(`\`safe-restart recover --force ${file}\` restarts the last good release (v1)`);

    // a later run that touches nothing (a dependency is down) does not make it healthy again
    await s.stopDependency();
    expect((await s.cli(['run', file])).code).toBe(1);
    const status = JSON.parse((await s.cli(['status', '--json'], { json: false })).stdout) as { recipes: Array<Record<string, unknown>> };
    expect(status.recipes[0]).toMatchObject({
      lastRun: expect.objectContaining({ outcome: 'aborted', evidence: expect.any(String) }),
      needsHuman: { runId: summary.runId, since, evidence: summary.evidence },
      file,
      unfinished: false,
    });

    // recover has no unfinished run to finish, and says that the failed one still needs a human
    const rec = await s.cli(['recover', file], { json: false });
    expect(rec.code).toBe(0);
    expect(rec.stdout).toBe(
      `nothing to recover: the last run of svc finished (aborted, v1) – run ${summary.runId} (exit 3) left the service needing a human: read ${summary.evidence}; \`safe-restart recover --force ${file}\` restarts the last good release\n`,
    );
    await s.stopService();
  });
});
