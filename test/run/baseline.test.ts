// Baseline gates: the new release is compared with the one it replaces, by the gate's own probe. Through the real
// CLI: the running release is measured before stop, the new one after its gate passed; the fixture's releases
// answer /healthz after DELAY_MS, or fail every ERROR_EVERY-th answer.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { CLI, sandboxPerTest, summaryOf, type CliResult, type Sandbox } from '../support/sandbox.js';

const setup = sandboxPerTest();

interface Figures { release: string | null; ok: number; samples: number; p90Ms: number | null; errorRate: number }
type Summary = {
  exitCode: number;
  reason: string;
  description: string;
  warnings: string[];
  baselines?: Array<{ gate: string; samples: number; before: Figures | null; after: Figures | null; detail: string; verdict: string }>;
  timeline: Array<{ phase: string; result: string; detail?: string }>;
};
// validate takes no --state-dir
const validate = (file: string) => spawnSync(process.execPath, [CLI, 'validate', file], { encoding: 'utf8' });
const summary = (r: CliResult) => summaryOf(r).summary as unknown as Summary;

const gate = (s: Sandbox, baseline: string) =>
  `  - name: latency\n    http: http://127.0.0.1:${s.port}/healthz\n    interval: 50ms\n    timeout: 5s\n    baseline: ${baseline}`;

describe('baseline gates', () => {
  it('a release 3× slower than its predecessor is rolled back, both latencies in the reason; one 1.1× slower passes', async () => {
    const s = await setup({ v1: { delayMs: 40 }, slow: { delayMs: 120 }, near: { delayMs: 44 } });
    await s.startCurrent();
    const file = s.recipe({ gates: gate(s, '{ samples: 20, latency_p90: 1.5x }') });

    const slow = await s.cli(['run', file, '--release', 'slow']);
    expect(slow.code, slow.stderr + slow.stdout.slice(-2000)).toBe(2);
    const sum = summary(slow);
    expect(sum.reason).toMatch(/gate "latency": the new release is worse than release v1: p90 latency (\d+)ms is (\d\.\d)× release v1's (\d+)ms \(limit 1\.5×/);
    const [, after, ratio, before] = /p90 latency (\d+)ms is (\d\.\d)× release v1's (\d+)ms/.exec(sum.reason) ?? [];
    expect(Number(after)).toBeGreaterThanOrEqual(120);
    expect(Number(before)).toBeGreaterThanOrEqual(40);
    expect(Number(before)).toBeLessThan(120);
    expect(Number(ratio)).toBeGreaterThan(1.5);
    // both figures side by side in the summary, from 20 samples each
    const figures = sum.baselines?.[0];
    expect(figures).toMatchObject({ gate: 'latency', samples: 20, verdict: 'failed', before: { release: 'v1', samples: 20, ok: 20 }, after: { release: 'slow', samples: 20, ok: 20 } });
    expect(figures?.after?.p90Ms).toBeGreaterThan((figures?.before?.p90Ms ?? 0) * 1.5);
    // the plain gate had passed: only the comparison failed it, and the rollback proved v1 again
    expect(sum.timeline.find((t) => t.phase === 'rollback_gates')?.result).toBe('ok');
    expect((await s.health())?.body).toMatch(/^ok v1 /);

    const near = await s.cli(['run', file, '--release', 'near']);
    expect(near.code, near.stderr + near.stdout.slice(-2000)).toBe(0);
    expect(summary(near).baselines?.[0]).toMatchObject({ verdict: 'passed', before: { release: 'v1' }, after: { release: 'near', ok: 20 } });
    expect(summary(near).baselines?.[0]?.detail).toMatch(/^p90 \d+(\.\d)?ms vs \d+(\.\d)?ms before \(limit 1\.5× \+ 5(\.0)?ms = \d+(\.\d)?ms\)$/);
    expect((await s.health())?.body).toMatch(/^ok near /);
    await s.stopService();
  });

  it('error_rate: a release that fails 1 answer in 4 against one that fails none is rolled back; the human output shows both', async () => {
    const s = await setup({ v1: {}, flaky: { errorEvery: 4 } });
    await s.startCurrent();
    const file = s.recipe({ gates: gate(s, '{ samples: 20, error_rate: "+1%" }') });
    const r = await s.cli(['run', file, '--release', 'flaky']);
    expect(r.code, r.stderr + r.stdout.slice(-2000)).toBe(2);
    expect(summary(r).reason).toMatch(/error rate 2\d(\.\d)?% \(\d of 20\) against release v1's 0% \(limit \+1%\); first error: .*503/);
    expect(summary(r).baselines?.[0]).toMatchObject({ verdict: 'failed', before: { errorRate: 0 } });

    // the same run as a person sees it: the comparison line, then the outcome
    const human = await s.cli(['run', file, '--release', 'flaky'], { json: false });
    expect(human.code).toBe(2);
    expect(human.stdout + human.stderr).toMatch(/baseline ✗ latency: errors \d\/20 vs 0\/20 before \(limit 1%\)/);
    await s.stopService();
  });

  it('a baseline that cannot be measured (the running release is down) is said, and the gate is judged on its own', async () => {
    const s = await setup({ v1: {}, v2: {} });
    // nothing runs: a restart of a dead service must still be possible
    const r = await s.cli(['run', s.recipe({ gates: gate(s, '{ samples: 5, latency_p90: 2x }') }), '--release', 'v2']);
    expect(r.code, r.stderr + r.stdout.slice(-2000)).toBe(0);
    expect(summary(r).warnings.join('\n')).toMatch(/latency not compared: release v1 answered only 0 of 5 baseline samples/);
    expect(summary(r).baselines?.[0]).toMatchObject({ verdict: 'not_compared', before: { ok: 0, samples: 5 } });
    await s.stopService();
  });

  it('plan shows the comparison; a baseline outside gates is refused naming file, line and field', async () => {
    const s = await setup();
    const file = s.recipe({ gates: gate(s, '{ samples: 10, latency_p90: 1.5x, error_rate: "+2%" }') });
    const plan = await s.cli(['plan', file], { json: false });
    expect(plan.code).toBe(0);
    expect(plan.stdout).toMatch(/baseline of gate latency: 10 samples of the running release/);
    expect(plan.stdout).toMatch(/then 10 samples compared with 10 of the running release taken in verify: p90 latency ≤ 1\.5× its p90 \+ 5ms, error rate ≤ its rate \+2%/);

    const bad = s.recipe({ dependencies: `  - name: fake-db\n    tcp: 127.0.0.1:${s.depPort}\n    baseline: { latency_p90: 2x }` });
    const refused = validate(bad);
    expect(refused.status).toBe(65);
    expect(refused.stderr).toMatch(/svc\.yaml:10:\d+.*dependencies\[0\]\.baseline.*only a gate can have a baseline/s);
    const neither = validate(s.recipe({ gates: gate(s, '{ samples: 10 }') }));
    expect(neither.status).toBe(65);
    expect(neither.stderr).toMatch(/gates\[0\]\.baseline.*needs latency_p90.*or error_rate/s);
  });
});
