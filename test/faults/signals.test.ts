// SIGINT and SIGTERM to safe-restart in each phase, through the real CLI. Each phase is held open by
// something slow (a dependency that is down, a sleeping hook or step, a service ignoring SIGTERM, a gate
// that keeps failing) and the signal is sent once the JSON events show the run inside it.
// Before stop: exit 1, the same process still answers. From stop on: rolled back, exit 2, v1 answers.
import { describe, expect, it } from 'vitest';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Sandbox } from '../support/sandbox.js';
import { fastParts, fastSandbox, fdReportPath, journalProblems, leakedFds, leakedProcesses, serving, shape, summaryOf, teardown, within, type RecipeParts, type Releases } from './helpers.js';

interface PhaseHold {
  phase: string;
  releases?: Releases;
  parts: (s: Sandbox) => RecipeParts;
  /** the event that shows the run is inside the phase */
  inside: (e: Record<string, unknown>) => boolean;
  exit: 1 | 2;
}

function startScript(s: Sandbox): string {
  const daemon = join(s.dir, 'start-daemon.sh');
  writeFileSync(daemon, `#!/bin/sh\ncd "${s.dir}/current" || exit 1\nPORT=${s.port} WARMUP_MS=50 "${process.execPath}" server.mjs >> "${s.dir}/log/svc.log" 2>&1 &\necho $! > "${s.pidfile}"\n`);
  chmodSync(daemon, 0o755);
  // v2 takes its time to start; the rollback's start of v1 does not
  const script = join(s.dir, 'start.sh');
  writeFileSync(script, `#!/bin/sh\nif [ "$SAFE_RESTART_RELEASE" = v2 ]; then sleep 30; fi\nexec "${daemon}"\n`);
  chmodSync(script, 0o755);
  return `  run: ["${script}"]\n  timeout: 60s`;
}

function commandRelease(s: Sandbox): string {
  // the activate command is slow for v2 only, so the rollback's re-activation of v1 is quick
  const activate = join(s.dir, 'activate.sh');
  writeFileSync(
    activate,
    `#!/bin/sh\nif [ "$SAFE_RESTART_RELEASE" = v2 ]; then sleep 30; fi\nln -sfn "${s.dir}/releases/$SAFE_RESTART_RELEASE" "${s.dir}/current.tmp" && mv -T "${s.dir}/current.tmp" "${s.dir}/current"\n`,
  );
  chmodSync(activate, 0o755);
  return `  current:\n    run: ["sh", "-c", "basename \\"$(readlink ${s.dir}/current)\\""]\n  activate:\n    run: ["${activate}"]\n    timeout: 60s`;
}

const HOLDS: PhaseHold[] = [
  {
    phase: 'dependencies',
    parts: (s) => ({ dependencies: `  - name: fake-db\n    tcp: 127.0.0.1:1\n    interval: 50ms\n    timeout: 60s` }),
    inside: (e) => e.event === 'check_started' && e.phase === 'dependencies',
    exit: 1,
  },
  {
    phase: 'before_stop',
    parts: () => ({ hooks: '  before_stop:\n    - name: drain\n      run: ["sleep", "30"]' }),
    inside: (e) => e.event === 'step_started' && e.phase === 'before_stop',
    exit: 1,
  },
  {
    phase: 'stop',
    releases: { v1: { ignoreTerm: true }, v2: {} },
    parts: (s) => ({ stop: `  signal: SIGTERM\n  pidfile: ${s.pidfile}\n  grace: 60s\n  timeout: 90s` }),
    inside: (e) => e.event === 'step_started' && e.phase === 'stop',
    exit: 2,
  },
  {
    phase: 'activate',
    parts: (s) => ({ release: commandRelease(s) }),
    inside: (e) => e.event === 'step_started' && e.phase === 'activate',
    exit: 2,
  },
  {
    phase: 'start',
    parts: (s) => ({ start: startScript(s) }),
    inside: (e) => e.event === 'step_started' && e.phase === 'start',
    exit: 2,
  },
  {
    phase: 'after_start',
    parts: () => ({ hooks: '  after_start:\n    - name: warm-cache\n      run: ["sleep", "30"]' }),
    inside: (e) => e.event === 'step_started' && e.phase === 'after_start',
    exit: 2,
  },
  {
    phase: 'gates',
    releases: { v1: {}, v2: { broken: true } },
    parts: (s) => ({ gates: `  - name: healthz\n    http: http://127.0.0.1:${s.port}/healthz\n    interval: 20ms\n    success_threshold: 2\n    timeout: 60s` }),
    inside: (e) => e.event === 'check_started' && e.phase === 'gates',
    exit: 2,
  },
];

const CASES = HOLDS.flatMap((h) => (['SIGINT', 'SIGTERM'] as const).map((signal) => [`${signal} during ${h.phase}`, signal, h] as const));

describe.concurrent('signals to safe-restart in each phase', () => {
  it.each(CASES)('%s', async (_name, signal, hold) => {
    let s: Sandbox | null = null;
    try {
      s = await fastSandbox(hold.releases ?? { v1: {}, v2: {} });
      const oldPid = await s.startCurrent();
      const file = s.recipe(fastParts(s, hold.parts(s)));
      const fds = fdReportPath(s);
      const run = s.start(['run', file, '--release', 'v2'], { fdReport: fds });
      await run.waitForEvent(hold.inside, 30_000);
      run.child.kill(signal);
      const r = await within(run.done, 60_000, 'the interrupted CLI');

      expect(r.code, r.stderr).toBe(hold.exit);
      const summary = summaryOf(r);
      expect(summary.description).toContain(`interrupted by ${signal} during ${hold.phase}`);
      const now = await serving(s);
      expect(now?.release).toBe('v1');
      expect(s.currentRelease()).toBe('v1');
      if (hold.exit === 1) {
        expect(now?.pid).toBe(oldPid);
        expect(summary.description).toMatch(/nothing was touched/);
      } else {
        expect(summary.description).toMatch(/rolled back to release v1, which passed its gates/);
      }

      const [records = []] = s.journals();
      expect(journalProblems(records)).toEqual([]);
      const kinds = shape(records);
      expect(kinds).toContain(`phase:${hold.phase}:finished`);
      const finished = records.find((x) => x.type === 'phase' && x.phase === hold.phase && x.status === 'finished');
      expect(finished).toMatchObject({ ok: false });
      if (hold.exit === 1) expect(kinds.filter((k) => k.startsWith('intent:stop'))).toEqual([]);
      else expect(kinds).toContain('phase:rollback_gates:finished');

      // the sleeping hook or step was taken down with its group; only the service runs
      expect(await leakedProcesses(s)).toEqual([]);
      expect(leakedFds(fds)).toEqual([]);
    } finally {
      await teardown(s);
    }
  });
});
