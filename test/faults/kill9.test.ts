// kill -9 loop: SIGKILL safe-restart at 10 points (phase boundaries and mid-phase, recognised from its JSON
// events) × 3 repetitions, then `recover`. Every repetition must end with a release that passes its gates
// answering, and the dead run's journal must name the phase that was in flight.
import { describe, expect, it } from 'vitest';
import type { Sandbox } from '../support/sandbox.js';
import { FORWARD, ROLLBACK } from '../../src/runner/machine.js';
import { digests, fastParts, fastSandbox, journalProblems, leakedProcesses, serving, summaryOf, teardown, within } from './helpers.js';

export const REPETITIONS = 3;
const ORDER: string[] = [...FORWARD, ...ROLLBACK];

interface KillPoint {
  label: string;
  /** a broken target, so the run reaches its rollback */
  rollback?: boolean;
  at: (e: Record<string, unknown>) => boolean;
  /** the phase the kill lands in (or a later one: a kill is not instantaneous) */
  phase: string;
}

const started = (phase: string) => (e: Record<string, unknown>) => e.event === 'phase_started' && e.phase === phase;

export const KILL_POINTS: KillPoint[] = [
  { label: 'mid dependencies', at: (e) => e.event === 'check_started' && e.phase === 'dependencies', phase: 'dependencies' },
  { label: 'mid before_stop hook', at: (e) => e.event === 'step_started' && e.phase === 'before_stop', phase: 'before_stop' },
  { label: 'boundary: stop starts', at: started('stop'), phase: 'stop' },
  { label: 'mid stop (signal sent)', at: (e) => e.event === 'step_started' && e.phase === 'stop', phase: 'stop' },
  { label: 'boundary: activate starts', at: started('activate'), phase: 'activate' },
  { label: 'mid start (spawn)', at: (e) => e.event === 'step_started' && e.phase === 'start', phase: 'start' },
  { label: 'boundary: start done', at: (e) => e.event === 'phase_finished' && e.phase === 'start', phase: 'start' },
  { label: 'mid gates', at: (e) => e.event === 'check_started' && e.phase === 'gates', phase: 'gates' },
  { label: 'boundary: rollback_start starts', rollback: true, at: started('rollback_start'), phase: 'rollback_start' },
  { label: 'mid rollback_gates', rollback: true, at: (e) => e.event === 'check_started' && e.phase === 'rollback_gates', phase: 'rollback_gates' },
];

function recipeFor(s: Sandbox): string {
  return s.recipe(
    fastParts(s, {
      // each phase lasts long enough to be caught inside it
      dependencies: `  - name: fake-db\n    tcp: 127.0.0.1:${s.depPort}\n    initial_delay: 200ms\n    timeout: 2s`,
      hooks: '  before_stop:\n    - name: drain\n      run: ["sleep", "0.3"]',
      gates: `  - name: healthz\n    http: http://127.0.0.1:${s.port}/healthz\n    interval: 20ms\n    success_threshold: 3\n    timeout: 3s`,
    }),
  );
}

describe.concurrent('kill -9 of safe-restart, then recover', () => {
  it.each(KILL_POINTS.map((p) => [p.label, p] as const))('%s', async (_label, point) => {
    let s: Sandbox | null = null;
    try {
      s = await fastSandbox({ v1: {}, v2: {}, v3: { broken: true } });
      await s.startCurrent();
      const file = recipeFor(s);
      // a first run records v1 as the last good release and puts the service in safe-restart's hands
      const base = await s.cli(['run', file]);
      expect(base.code, base.stderr).toBe(0);

      for (let rep = 1; rep <= REPETITIONS; rep++) {
        const was = await serving(s);
        const before = was?.release as string;
        const target = point.rollback ? 'v3' : before === 'v1' ? 'v2' : 'v1';
        const run = s.start(['run', file, '--release', target]);
        await run.waitForEvent(point.at, 30_000);
        run.child.kill('SIGKILL');
        const killed = await within(run.done, 10_000, 'the killed CLI');
        expect(killed.signal, `rep ${rep}`).toBe('SIGKILL');

        // the journal names the phase in flight: the kill point's phase or one after it, never an earlier one
        const dead = digests(s).find((d) => d.runId === killed.events[0]?.runId);
        expect(dead?.finished, `rep ${rep}`).toBe(false);
        const inFlight = dead?.inFlight?.phase as string;
        expect(ORDER.indexOf(inFlight), `rep ${rep}: in flight ${inFlight}, killed at ${point.label}`).toBeGreaterThanOrEqual(ORDER.indexOf(point.phase));
        if (dead?.touched) {
          const next = await s.cli(['run', file, '--release', target], { json: false });
          expect(next.code, `rep ${rep}: ${next.stderr}`).toBe(4);
          expect(next.stderr).toContain(`died during ${inFlight}`);
        }

        const rec = await within(s.cli(['recover', file]), 60_000, 'recover');
        if (dead?.touched) {
          expect(rec.code, `rep ${rep}: ${rec.stderr}\n${rec.stdout.slice(-1500)}`).toBe(2);
          expect(summaryOf(rec).outcome).toBe('rolled_back');
        } else {
          // killed before stop: nothing was touched, so recover says so and leaves the service alone
          expect(rec.code, `rep ${rep}: ${rec.stderr}\n${rec.stdout.slice(-1500)}`).toBe(0);
          expect(rec.events).toEqual([expect.objectContaining({ event: 'nothing_to_recover' })]);
          expect(await serving(s), `rep ${rep}`).toEqual(was);
          // a before_stop step the killed run left ends by itself: recover had nothing to undo
          const deadline = Date.now() + 5_000;
          while ((await leakedProcesses(s)).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
        }

        // a release that passed its gates answers, the link names it, and it is never the broken one
        const now = await serving(s);
        expect(now?.release, `rep ${rep}`).toMatch(/^v[12]$/);
        expect(s.currentRelease()).toBe(now?.release);
        const status = JSON.parse((await s.cli(['status'], { json: true })).stdout) as { recipes: Array<{ lastGoodRelease: string; unfinished: boolean }> };
        expect(status.recipes[0]).toMatchObject({ lastGoodRelease: now?.release, unfinished: false });
        // every journal ends with a summary or names who finished it (a run that touched nothing is closed by
        // the next run, which takes its lock over)
        for (const d of digests(s)) expect(d.finished || d.recoveredBy !== null || !d.touched, `journal ${d.runId}`).toBe(true);
        for (const records of s.journals()) if (records.some((r) => r.type === 'summary')) expect(journalProblems(records)).toEqual([]);
        expect(await leakedProcesses(s), `rep ${rep}`).toEqual([]);
      }
    } finally {
      await teardown(s);
    }
  });
});
