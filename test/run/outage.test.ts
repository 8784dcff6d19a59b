// An outage is not a bad release: a gate that fails while a dependency is down is classified as a dependency
// outage, and on_dependency_outage decides (wait | rollback | stop). Through the real CLI, the dependency a real
// TCP server the test stops and starts again.
import { describe, expect, it } from 'vitest';
import { sandboxPerTest, summaryOf, type CliResult, type Sandbox } from '../support/sandbox.js';

const setup = sandboxPerTest();

type Summary = { exitCode: number; outcome: string; description: string; warnings: string[]; timeline: Array<{ phase: string; durationMs: number; result: string; detail?: string }> };
const summary = (r: CliResult) => summaryOf(r).summary as unknown as Summary;
const phases = (r: CliResult) => summary(r).timeline.map((t) => t.phase);

// the service's own view of its database is a gate too (as /healthz/db would be): it fails while the database is down
const gates = (s: Sandbox) =>
  [
    `  - name: healthz\n    http: http://127.0.0.1:${s.port}/healthz\n    stable_for: 2s\n    timeout: 6s`,
    `  - name: db-from-service\n    tcp: 127.0.0.1:${s.depPort}\n    stable_for: 2s\n    timeout: 6s`,
  ].join('\n');

const recipe = (s: Sandbox, policy: string, wait: string) => s.recipe({ gates: gates(s), extra: `on_dependency_outage: ${policy}\noutage_wait: ${wait}` });

/** the database goes down once the gates run, and (optionally) comes back after `downMs` */
async function outageDuringGates(s: Sandbox, run: ReturnType<Sandbox['start']>, downMs: number | null): Promise<void> {
  await run.waitForEvent((e) => e.event === 'phase_started' && e.phase === 'gates');
  await new Promise((r) => setTimeout(r, 300));
  await s.stopDependency();
  if (downMs !== null) setTimeout(() => void s.startDependency(), downMs);
}

describe('on_dependency_outage', () => {
  it('wait: the database drops during the gates and is back 2.5s later → the new release is held and passes, exit 0, the summary says so', async () => {
    const s = await setup();
    await s.startCurrent();
    const run = s.start(['run', recipe(s, 'wait', '15s'), '--release', 'v2']);
    await outageDuringGates(s, run, 2_500);
    const r = await run.done;
    expect(r.code, r.stderr + r.stdout.slice(-2000)).toBe(0);
    expect(summary(r).description).toMatch(/gates failed while fake-db was down – held release v2, dependencies back after \d+(\.\d)?s, gates passed/);
    expect(phases(r).some((p) => p.startsWith('rollback_'))).toBe(false);
    expect((await s.health())?.body).toMatch(/^ok v2 /);
    await s.stopService();
  });

  it('wait: the database stays down through outage_wait → then the normal rollback', async () => {
    const s = await setup();
    await s.startCurrent();
    const run = s.start(['run', recipe(s, 'wait', '2s'), '--release', 'v2']);
    await outageDuringGates(s, run, null);
    // it comes back only once the run has given up waiting and rolls back: the old release then proves healthy
    await run.waitForEvent((e) => e.event === 'phase_started' && e.phase === 'rollback_stop', 30_000);
    await s.startDependency();
    const r = await run.done;
    expect(r.code, r.stderr + r.stdout.slice(-2000)).toBe(2);
    const gatesEntry = summary(r).timeline.find((t) => t.phase === 'gates');
    expect(gatesEntry?.detail).toMatch(/gates failed while fake-db was down and it stayed down through outage_wait 2(\.0)?s/);
    expect(gatesEntry?.durationMs).toBeGreaterThanOrEqual(2_000);
    expect((await s.health())?.body).toMatch(/^ok v1 /);
    await s.stopService();
  });

  it('stop: exit 3 with the classification, the new release left running, nothing rolled back', async () => {
    const s = await setup();
    await s.startCurrent();
    const run = s.start(['run', recipe(s, 'stop', '2s'), '--release', 'v2']);
    await outageDuringGates(s, run, null);
    const r = await run.done;
    expect(r.code).toBe(3);
    expect(summary(r).description).toMatch(/gates failed while fake-db was down – held release v2 as it is, nothing rolled back \(on_dependency_outage: stop\)/);
    expect(phases(r).some((p) => p.startsWith('rollback_'))).toBe(false);
    expect((await s.health())?.body).toMatch(/^ok v2 /);
    await s.stopService();
  });

  it('a genuinely bad release with healthy dependencies: the normal rollback, no waiting', async () => {
    const s = await setup({ v1: {}, v3: { broken: true } });
    await s.startCurrent();
    const r = await s.cli(['run', s.recipe({ gates: `  - name: healthz\n    http: http://127.0.0.1:${s.port}/healthz\n    timeout: 1500ms`, extra: 'outage_wait: 30s' }), '--release', 'v3']);
    expect(r.code).toBe(2);
    expect(summary(r).warnings.join('\n')).not.toMatch(/outage|holding release/);
    expect(summary(r).timeline.find((t) => t.phase === 'gates')?.durationMs).toBeLessThan(10_000);
    await s.stopService();
  });
});
