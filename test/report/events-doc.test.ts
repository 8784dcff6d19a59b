// docs/events.md must document every event kind and every field a real run emits.
import { afterEach, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EVENT_KINDS } from '../../src/report/events.js';
import { ROOT, Sandbox } from '../support/sandbox.js';

const doc = readFileSync(join(ROOT, 'docs', 'events.md'), 'utf8');

function section(kind: string): string {
  const start = doc.indexOf(`### \`${kind}\``);
  if (start < 0) return '';
  const next = doc.indexOf('\n### ', start + 1);
  return doc.slice(start, next < 0 ? undefined : next);
}

let sandbox: Sandbox | null = null;
afterEach(async () => {
  await sandbox?.cleanup();
  sandbox = null;
});

describe('docs/events.md', () => {
  it('has a section for every event kind', () => {
    for (const kind of EVENT_KINDS) expect(section(kind), kind).not.toBe('');
  });

  it('documents every field that real runs emit (success, rollback, dependency wait)', async () => {
    const s = await Sandbox.create({ v1: {}, v2: {}, v3: { broken: true } }, 'v1');
    sandbox = s;
    await s.startCurrent();
    const hooks = '  before_stop:\n    - run: ["sh", "-c", "echo draining; sleep 0.3; echo drained"]';
    const deps = `  - name: fake-db\n    tcp: 127.0.0.1:${s.depPort}\n    timeout: 5s`;
    const file = s.recipe({ hooks, dependencies: deps });
    // the dependency comes up late, so progress events are emitted
    const first = s.start(['run', file, '--release', 'v2', '--reason', 'doc test']);
    await first.waitForEvent((e) => e.event === 'check_progress');
    await s.startDependency();
    const ok = await first.done;
    const rolled = await s.cli(['run', file, '--release', 'v3']);
    const events = [...ok.events, ...rolled.events];
    const kinds = new Set(events.map((e) => String(e.event)));
    expect([...kinds].sort()).toEqual(expect.arrayContaining(['check_finished', 'check_progress', 'phase_finished', 'releases_resolved', 'run_started', 'step_output', 'summary']));
    const common = ['level', 'time', 'runId', 'phase', 'event'];
    for (const e of events) {
      const text = section(String(e.event));
      expect(text, `section for ${String(e.event)}`).not.toBe('');
      for (const key of Object.keys(e)) {
        if (common.includes(key)) continue;
        expect(text, `${String(e.event)}.${key} documented`).toContain(`\`${key}\``);
      }
    }
    const summary = rolled.events.at(-1)?.summary as Record<string, unknown>;
    for (const key of Object.keys(summary)) expect(section('summary'), `summary.${key}`).toContain(`\`${key}\``);
    for (const key of common) expect(doc).toContain(`\`${key}\``);
    const pid = s.pid();
    if (pid) process.kill(pid, 'SIGTERM');
  });
});
