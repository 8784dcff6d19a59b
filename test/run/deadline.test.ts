// deadline: a time budget that keeps time for the way back. Through the real CLI and the fixture service.
// The numbers: stop bounded at 4s, start (spawn) 50ms, the gate 6s + 1s attempt. So the rollback's reserve is
// 4s + 50ms + 7s = 11.05s and the fixed forward steps 4.05s: 15.1s must fit before anything is stopped.
import { describe, expect, it } from 'vitest';
import { sandboxPerTest, summaryOf, type CliResult, type Sandbox } from '../support/sandbox.js';

const setup = sandboxPerTest();

type Summary = {
  exitCode: number;
  reason: string;
  durationMs: number;
  deadline?: { deadlineMs: number; reserveMs: number; cut: string | null };
  timeline: Array<{ phase: string; result: string; durationMs: number; detail?: string }>;
};
const summary = (r: CliResult) => summaryOf(r).summary as unknown as Summary;
const entry = (r: CliResult, phase: string) => summary(r).timeline.find((t) => t.phase === phase);

const recipe = (s: Sandbox, deadline: string, extra: Partial<Record<'dependencies' | 'verify', string>> = {}) =>
  s.recipe({
    ...extra,
    stop: `  signal: SIGTERM\n  pidfile: ${s.pidfile}\n  grace: 3s\n  timeout: 4s`,
    gates: `  - name: healthz\n    http: http://127.0.0.1:${s.port}/healthz\n    attempt_timeout: 1s\n    timeout: 6s`,
    extra: `deadline: ${deadline}`,
  });

describe('deadline', () => {
  it('fixed steps plus the reserve do not fit: exit 1 before anything, the arithmetic printed, the same pid serving; plan and preflight say so', async () => {
    const s = await setup({ v1: {}, v2: {} });
    const pid = await s.startCurrent();
    const file = recipe(s, '12s');
    const r = await s.cli(['run', file, '--release', 'v2']);
    expect(r.code, r.stderr + r.stdout.slice(-2000)).toBe(1);
    expect(summary(r).reason).toMatch(/deadline 12(\.0)?s cannot hold this run with its way back: stop 4(\.0)?s \+ start 50ms \+ rollback reserve 11\.05?s = 15\.1s > deadline 12(\.0)?s/);
    expect(summary(r).timeline.map((t) => t.phase)).not.toContain('stop');
    expect(s.pid()).toBe(pid);
    expect((await s.health())?.body).toMatch(/^ok v1 /);

    const plan = await s.cli(['plan', file, '--release', 'v2'], { json: false });
    expect(plan.stdout).toMatch(/Deadline 12(\.0)?s: does NOT fit – a run is refused before anything is stopped \(stop 4(\.0)?s \+ start 50ms \+ rollback reserve 11\.05?s = 15\.1s > deadline 12(\.0)?s\)/);
    const pre = await s.cli(['preflight', file, '--release', 'v2'], { json: false });
    expect(pre.code).toBe(1);
    expect(pre.stdout).toMatch(/deadline:\s+does NOT fit/);
    const fits = await s.cli(['preflight', recipe(s, '16s'), '--release', 'v2'], { json: false });
    expect(fits.code, fits.stdout).toBe(0);
    expect(fits.stdout).toMatch(/deadline:\s+fits, 900ms left for dependencies and gates/);
    await s.stopService();
  });

  it('a gate longer than the budget leaves is cut: rolled back inside the deadline, the summary says the deadline cut it', async () => {
    const s = await setup({ v1: {}, v3: { broken: true } });
    await s.startCurrent();
    const r = await s.cli(['run', recipe(s, '16s'), '--release', 'v3']);
    expect(r.code, r.stderr + r.stdout.slice(-2000)).toBe(2);
    const gates = entry(r, 'gates');
    // 16s − (time spent) − 11.05s reserve is under 5s: the gate alone would have waited its 6s
    expect(gates?.durationMs).toBeLessThan(6_000);
    expect(gates?.detail).toMatch(/gates cut by the deadline: \d+(\.\d+)?s of deadline 16(\.0)?s were left for them after keeping 11\.05?s for the rollback/);
    expect(summary(r).deadline).toMatchObject({ deadlineMs: 16_000, reserveMs: 11_050 });
    expect(summary(r).deadline?.cut).toMatch(/^gates cut by the deadline/);
    expect(entry(r, 'rollback_gates')?.result).toBe('ok');
    expect(summary(r).durationMs).toBeLessThanOrEqual(16_000 + 1_000);
    expect((await s.health())?.body).toMatch(/^ok v1 /);
    await s.stopService();
  });

  it('a dependency that is late is waited for only as long as the budget allows: exit 1, nothing touched', async () => {
    const s = await setup({ v1: {}, v2: {} }, { dependency: false });
    const pid = await s.startCurrent();
    const r = await s.cli(['run', recipe(s, '16s', { dependencies: `  - name: fake-db\n    tcp: 127.0.0.1:${s.depPort}\n    timeout: 10s` }), '--release', 'v2']);
    expect(r.code).toBe(1);
    expect(entry(r, 'dependencies')?.durationMs).toBeLessThan(3_000);
    expect(entry(r, 'dependencies')?.detail).toMatch(/dependencies cut by the deadline/);
    expect(s.pid()).toBe(pid);
    await s.stopService();
  });

  it('time spent before stop counts: a verify step that eats the slack is refused at before_stop with the time spent in the sum', async () => {
    const s = await setup({ v1: {}, v2: {} });
    const pid = await s.startCurrent();
    const r = await s.cli(['run', recipe(s, '16s', { verify: '  - run: ["sleep", "1.5"]' }), '--release', 'v2']);
    expect(r.code, r.stderr + r.stdout.slice(-2000)).toBe(1);
    expect(entry(r, 'before_stop')?.detail).toMatch(/deadline 16(\.0)?s cannot hold this run with its way back: 1\.\d+s spent \+ stop 4(\.0)?s \+ start 50ms \+ rollback reserve 11\.05?s = 16\.\d+s > deadline 16(\.0)?s/);
    expect(s.pid()).toBe(pid);
    await s.stopService();
  });
});
