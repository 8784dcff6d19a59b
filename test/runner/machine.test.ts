import { describe, expect, it } from 'vitest';
import { initialState, next, withReleases, type MachineEvent, type MachineState } from '../../src/runner/machine.js';
import type { Phase } from '../../src/report/events.js';

const ok: MachineEvent = { kind: 'ok' };
const fail = (reason = 'boom'): MachineEvent => ({ kind: 'failed', reason });
const sigint: MachineEvent = { kind: 'interrupted', signal: 'SIGINT' };

function walk(state: MachineState, events: MachineEvent[]): { state: MachineState; phases: Phase[] } {
  const phases: Phase[] = [state.phase];
  for (const e of events) {
    state = next(state, e);
    phases.push(state.phase);
  }
  return { state, phases };
}

const releaseSwitch = () => withReleases(initialState({ previous: null, target: null, rollbackEnabled: true }), 'v1', 'v2');

describe('the restart state machine', () => {
  it('walks the forward path to exit 0', () => {
    const { state, phases } = walk(releaseSwitch(), Array(10).fill(ok));
    expect(phases).toEqual(['resolve', 'dependencies', 'verify', 'before_stop', 'stop', 'activate', 'start', 'after_start', 'gates', 'on_success', 'done']);
    expect(state.exit).toEqual({ code: 0, outcome: 'succeeded' });
  });

  it.each(['resolve', 'dependencies', 'verify', 'before_stop'] as Phase[])('a failure in %s exits 1 with nothing touched', (phase) => {
    let s = releaseSwitch();
    while (s.phase !== phase) s = next(s, ok);
    expect(next(s, fail()).exit).toEqual({ code: 1, outcome: 'aborted' });
    expect(next(s, sigint).exit).toEqual({ code: 1, outcome: 'aborted' });
  });

  it.each(['stop', 'activate', 'start', 'after_start', 'gates'] as Phase[])('a failure in %s rolls back, and a healthy rollback exits 2', (phase) => {
    let s = releaseSwitch();
    while (s.phase !== phase) s = next(s, ok);
    s = next(s, fail('gate healthz failed'));
    expect(s.phase).toBe('rollback_stop');
    const { state, phases } = walk(s, Array(6).fill(ok));
    expect(phases).toEqual(['rollback_stop', 'rollback_activate', 'rollback_steps', 'rollback_start', 'rollback_gates', 'on_rollback', 'done']);
    expect(state.exit).toEqual({ code: 2, outcome: 'rolled_back' });
    expect(state.failures).toEqual([{ phase, reason: 'gate healthz failed' }]);
  });

  it('an interrupt during gates rolls back like a failure', () => {
    let s = releaseSwitch();
    while (s.phase !== 'gates') s = next(s, ok);
    expect(next(s, sigint).phase).toBe('rollback_stop');
  });

  it('a rollback never triggers another rollback: its failure exits 3', () => {
    let s = releaseSwitch();
    while (s.phase !== 'gates') s = next(s, ok);
    s = next(s, fail());
    while (s.phase !== 'rollback_gates') s = next(s, ok);
    const end = next(s, fail('previous release unhealthy too'));
    expect(end.exit).toEqual({ code: 3, outcome: 'failed' });
    expect(end.failures.map((f) => f.phase)).toEqual(['gates', 'rollback_gates']);
  });

  it('one interrupt during a rollback is noted, a second abandons it with exit 3', () => {
    let s = releaseSwitch();
    while (s.phase !== 'gates') s = next(s, ok);
    s = next(s, fail());
    s = next(s, ok);
    const once = next(s, sigint);
    expect(once.phase).toBe('rollback_activate');
    expect(once.exit).toBeNull();
    expect(next(once, { kind: 'abandon', signal: 'SIGINT' }).exit?.code).toBe(3);
    expect(next(s, { kind: 'abandon', signal: 'SIGINT' }).exit?.code).toBe(3);
  });

  it('an in-place restart has nothing to roll back to: exit 3', () => {
    let s = withReleases(initialState({ previous: null, target: null, rollbackEnabled: true }), 'v1', 'v1');
    while (s.phase !== 'gates') s = next(s, ok);
    expect(next(s, fail()).exit).toEqual({ code: 3, outcome: 'failed' });
  });

  it('rollback disabled: exit 3', () => {
    let s = withReleases(initialState({ previous: null, target: null, rollbackEnabled: false }), 'v1', 'v2');
    while (s.phase !== 'start') s = next(s, ok);
    expect(next(s, fail()).exit?.code).toBe(3);
  });

  it('first run: stop what was started, then exit 3', () => {
    let s = withReleases(initialState({ previous: null, target: null, rollbackEnabled: true }), null, 'v1');
    while (s.phase !== 'gates') s = next(s, ok);
    s = next(s, fail());
    expect(s.phase).toBe('cleanup_stop');
    expect(next(s, ok).exit).toEqual({ code: 3, outcome: 'failed' });
    expect(next(s, fail()).exit?.code).toBe(3);
  });

  it('hooks after the proof only warn', () => {
    let s = releaseSwitch();
    while (s.phase !== 'on_success') s = next(s, ok);
    const end = next(s, fail('lb re-add failed'));
    expect(end.exit?.code).toBe(0);
    expect(end.warnings).toEqual([{ phase: 'on_success', reason: 'lb re-add failed' }]);
  });

  it('a finished machine ignores further events', () => {
    const { state } = walk(releaseSwitch(), Array(10).fill(ok));
    expect(next(state, fail())).toBe(state);
  });
});
