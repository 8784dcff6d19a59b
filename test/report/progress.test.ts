// check_progress of a check that passes and waits out stable_for reads as passing, not as "still waiting".
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { RunEvent } from '../../src/report/events.js';
import { createHumanRenderer, passingText } from '../../src/report/human.js';
import { createTtyRenderer } from '../../src/report/tty.js';

const stablePassing: RunEvent = { kind: 'check_progress', phase: 'gates', check: 'healthz', attempts: 31, elapsedMs: 3_100, lastError: null, passing: true, stableForMs: 3_040, stableRequiredMs: 10_000 };
const failing: RunEvent = { kind: 'check_progress', phase: 'gates', check: 'healthz', attempts: 12, elapsedMs: 6_000, lastError: 'ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:8080' };

function human(events: RunEvent[]): string {
  let out = '';
  const sink = createHumanRenderer({ write: (t) => (out += t), now: () => 0, progressEveryMs: 0 });
  for (const e of events) sink(e);
  return out;
}

describe('progress of a passing check', () => {
  it('passingText: "passing, stable for 3.0s of 10s", or passing with its attempts before success_threshold', () => {
    expect(passingText(stablePassing as Extract<RunEvent, { kind: 'check_progress' }>)).toBe('passing, stable for 3.0s of 10s');
    expect(passingText({ kind: 'check_progress', phase: 'gates', check: 'h', attempts: 2, elapsedMs: 1_000, lastError: null, passing: true })).toBe('passing, 2 attempts');
    expect(passingText({ kind: 'check_progress', phase: 'gates', check: 'h', attempts: 9, elapsedMs: 1_000, lastError: null, passing: true, stableForMs: 1_500, stableRequiredMs: 2_500 })).toBe(
      'passing, stable for 1.5s of 2.5s',
    );
  });

  it('plain lines: passing, not "still waiting"; a failing check still says still waiting and why', () => {
    const out = human([stablePassing]);
    expect(out).toContain('… healthz: passing, stable for 3.0s of 10s');
    expect(out).not.toContain('still waiting');
    expect(human([failing])).toContain('… healthz: still waiting after 6.00s, 12 attempts, last: ECONNREFUSED');
  });

  it('the live view shows the same', async () => {
    const stream = Object.assign(new PassThrough(), { columns: 100, rows: 40 });
    let out = '';
    stream.on('data', (d: Buffer) => (out += d.toString()));
    const sink = createTtyRenderer({ stream, color: false, frameMs: 10_000 });
    sink({ kind: 'phase_started', phase: 'gates' });
    sink({ kind: 'check_started', phase: 'gates', check: 'healthz', checkType: 'http', target: 'http://127.0.0.1:8080/healthz' });
    sink(stablePassing);
    await new Promise((resolve) => setImmediate(resolve));
    expect(out).toContain('… healthz: passing, stable for 3.0s of 10s');
    sink(failing);
    await new Promise((resolve) => setImmediate(resolve));
    expect(out).toContain('… healthz: 12 attempts · last: ECONNREFUSED');
  });
});
