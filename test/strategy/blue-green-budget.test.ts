// Baseline gates and the deadline in blue/green, behind a real HAProxy under 200 req/s of our own load: the idle
// slot's new release is compared with the live slot's running one (the two slots side by side, each on its own
// port), and a deadline cuts the new slot's gates so that the way back keeps its time. Traffic never sees a release
// that failed either: 0 failed requests, the live slot's process untouched.
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { bgRecipe, blueGreenWorld, GATES, HAVE_HAPROXY, journalSoFar, lbStatus, phaseOf, slotHealth, slotPid, strategySandbox, summary, underCi, underLoad, zeroFailed, type Summary } from './world.js';

if (!HAVE_HAPROXY) console.warn(`blue/green baseline and deadline tests ${underCi ? 'FAIL under CI=true' : 'skipped'}: install Debian's haproxy`);

const setup = strategySandbox();

type Figures = { release: string | null; ok: number; samples: number; p90Ms: number | null };
type WithBaselines = Summary & {
  reason: string;
  durationMs: number;
  baselines?: Array<{ gate: string; before: Figures | null; after: Figures | null; verdict: string; detail: string }>;
  deadline?: { deadlineMs: number; reserveMs: number; cut: string | null };
};

// the gate of GATES plus a comparison with the live slot: the same probe on ${SAFE_RESTART_PORT}, the live slot's
// port while measuring the baseline, the idle slot's after it started
const BASELINE_GATES = [
  'gates:',
  '  - name: healthz',
  '    http: { url: "http://127.0.0.1:${SAFE_RESTART_PORT}/healthz", body: "ok ${SAFE_RESTART_RELEASE} " }',
  '    success_threshold: 2',
  '    timeout: 4s',
  '    baseline: { samples: 20, latency_p90: 1.5x }',
].join('\n');

describe.skipIf(!HAVE_HAPROXY && !underCi)('blue/green: baseline gates and the deadline', () => {
  it('the idle slot 3× slower than the live one is stopped before the switch, both latencies in the reason; 1.1× slower is switched to', async () => {
    const { s, blue, green, bluePid, lb, front } = await blueGreenWorld(setup, { v1: { delayMs: 40 }, slow: { delayMs: 120 }, near: { delayMs: 44 } });
    // bgRecipe's gates come last in its file: these take their place
    const file = withGates(bgRecipe(s, lb, blue, green), BASELINE_GATES);

    const { r, load } = await underLoad(s, front, ['run', file, '--release', 'slow']);
    expect(r.code, r.stderr + r.stdout.slice(-3000)).toBe(2);
    const sum = summary(r) as WithBaselines;
    expect(sum.reason).toMatch(/gate "healthz": the new release is worse than release v1: p90 latency \d+ms is \d\.\d× release v1's \d+ms \(limit 1\.5×/);
    const figures = sum.baselines?.[0];
    expect(figures).toMatchObject({ verdict: 'failed', before: { release: 'v1', samples: 20, ok: 20 }, after: { release: 'slow', samples: 20, ok: 20 } });
    expect(figures?.before?.p90Ms).toBeGreaterThanOrEqual(40);
    expect(figures?.after?.p90Ms).toBeGreaterThanOrEqual(120);
    // measured on the two slots' own ports: the live one before anything, the idle one once it had started
    const notes = journalSoFar(s, sum.journal).filter((x) => x.type === 'note').map((x) => String(x.detail));
    expect(notes.some((n) => /^baseline of gate healthz on release v1: 20\/20 passed/.test(n))).toBe(true);
    expect(notes.some((n) => /^against the baseline of gate healthz on release slow: 20\/20 passed/.test(n))).toBe(true);
    // traffic never saw the slow slot: blue's process kept serving, green stopped, 0 failed
    expect(phaseOf(r, 'switch')).toBeUndefined();
    zeroFailed(load);
    expect(slotPid(s, 'blue')).toBe(bluePid);
    expect(slotHealth(blue.port)).toBe(`ok v1 ${bluePid}`);
    expect(slotHealth(green.port)).toBeNull();
    expect(await lbStatus(lb)).toMatchObject({ blue: 'UP', green: 'MAINT' });

    const near = await underLoad(s, front, ['run', file, '--release', 'near']);
    expect(near.r.code, near.r.stderr + near.r.stdout.slice(-3000)).toBe(0);
    expect((summary(near.r) as WithBaselines).baselines?.[0]).toMatchObject({ verdict: 'passed', before: { release: 'v1' }, after: { release: 'near', ok: 20 } });
    zeroFailed(near.load);
    expect(slotHealth(green.port)).toBe(`ok near ${slotPid(s, 'green')}`);
    expect((await lbStatus(lb)).green).toBe('UP');
  });

  it('a deadline cuts the new slot’s gates: stopped before the switch inside the deadline, the summary says the deadline cut them', async () => {
    const { s, blue, green, bluePid, lb, front } = await blueGreenWorld(setup, { v1: {}, v3: { broken: true } });
    // the gate waits up to 30s for a release that never turns healthy. The budget: the new slot's start 50ms and
    // gates 50ms (their least), the switch 36s (UP within the gate's 31s, drain 5s); the reserve is the switch back
    // 36s + the stop 4s. 80s leaves the gates about 4s, far less than their own 30s.
    const file = withGates(bgRecipe(s, lb, blue, green, 'deadline: 80s'), GATES_SLOW, (text) => text.replace('  grace: 3s', '  grace: 3s\n  timeout: 4s'));
    const plan = await s.cli(['plan', file, '--release', 'v3'], { json: false });
    expect(plan.stdout).toMatch(/Deadline 1m ?20s: fits, 3\.9s left for dependencies and gates \(start 50ms \+ gates 50ms \+ switch 36(\.0)?s \+ rollback reserve 40(\.0)?s = 1m ?16\.1s ≤ deadline 1m ?20s\)/);
    const pre = await s.cli(['preflight', file, '--release', 'v3'], { json: false });
    expect(pre.code, pre.stdout + pre.stderr).toBe(0);
    expect(pre.stdout).toMatch(/deadline:\s+fits, 3\.9s left for dependencies and gates/);

    const { r, load } = await underLoad(s, front, ['run', file, '--release', 'v3']);
    expect(r.code, r.stderr + r.stdout.slice(-3000)).toBe(2);
    const sum = summary(r) as WithBaselines;
    expect(sum.deadline).toMatchObject({ deadlineMs: 80_000, reserveMs: 40_000 });
    expect(sum.deadline?.cut).toMatch(/^gates cut by the deadline: \d+(\.\d+)?s of deadline 1m ?20s were left for them after keeping 40(\.0)?s for the rollback/);
    // cut well before the gate's own 30s; the way back (stop the idle slot) inside what was kept for it
    expect(phaseOf(r, 'gates')?.durationMs).toBeLessThan(15_000);
    expect(sum.durationMs).toBeLessThanOrEqual(80_000);
    expect(phaseOf(r, 'switch')).toBeUndefined();
    zeroFailed(load);
    expect(slotHealth(blue.port)).toBe(`ok v1 ${bluePid}`);
    expect(slotHealth(green.port)).toBeNull();
  });
});

const GATES_SLOW = ['gates:', GATES.replace('timeout: 4s', 'timeout: 30s')].join('\n');

/** The recipe bgRecipe wrote, with other gates in place of its own (its last section), and any other edit. */
function withGates(file: string, gates: string, edit: (text: string) => string = (text) => text): string {
  const text = edit(readFileSync(file, 'utf8'));
  const at = text.lastIndexOf('\ngates:\n');
  writeFileSync(file, `${text.slice(0, at)}\n${gates}\n`);
  return file;
}
