// `safe-restart run` through the real CLI, against real processes: what the user sees is the exit
// code, which release answers (and with which pid), and what the journal says.
import { describe, expect, it } from 'vitest';
import { writeFileSync, rmSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { eventsOf, sandboxPerTest, summaryOf, type CliResult, type Sandbox } from '../support/sandbox.js';

const setup = sandboxPerTest();


function journalTypes(s: Sandbox): string[][] {
  return s.journals().map((records) => records.map((r) => (r.type === 'intent' || r.type === 'done' ? `${r.type}:${r.phase}` : String(r.type))));
}

function lastSummary(r: CliResult) {
  return summaryOf(r).summary as { outcome: string; exitCode: number; description: string; previousRelease: string | null; targetRelease: string | null; leftState?: string[] };
}


describe('safe-restart run', () => {
  it('switches to a healthy release: exit 0, new pid serving v2, journal with intent/done pairs, last good recorded', async () => {
    const s = await setup();
    const oldPid = await s.startCurrent();
    const r = await s.cli(['run', s.recipe(), '--release', 'v2']);
    expect(r.code, r.stderr).toBe(0);
    const health = await s.health();
    expect(health?.body).toMatch(/^ok v2 /);
    expect(s.pid()).not.toBe(oldPid);
    expect(s.currentRelease()).toBe('v2');
    const summary = lastSummary(r);
    expect(summary).toMatchObject({ outcome: 'succeeded', exitCode: 0, previousRelease: 'v1', targetRelease: 'v2' });
    expect(summary.description).toMatch(/release v2 passed 1 gate – now serving release v2/);
    const [types] = journalTypes(s);
    expect(types?.[0]).toBe('run');
    expect(types).toEqual(expect.arrayContaining(['intent:stop', 'done:stop', 'intent:activate', 'done:activate', 'intent:start', 'done:start', 'summary']));
    // every intent is followed by its done
    expect(types?.filter((t) => t.startsWith('intent:')).length).toBe(types?.filter((t) => t.startsWith('done:')).length);
    for (const e of r.events) expect(e).toMatchObject({ runId: summaryOf(r).runId });
    expect(r.events.at(-1)?.event).toBe('summary');
    await s.stopService();
  });

  it('dependency down: exit 1, and the old process is the same pid and still answering', async () => {
    const s = await setup();
    const oldPid = await s.startCurrent();
    await s.stopDependency();
    const r = await s.cli(['run', s.recipe(), '--release', 'v2']);
    expect(r.code).toBe(1);
    expect(s.pid()).toBe(oldPid);
    expect((await s.health())?.body).toMatch(new RegExp(`^ok v1 ${oldPid}`));
    expect(s.currentRelease()).toBe('v1');
    const summary = lastSummary(r);
    expect(summary.outcome).toBe('aborted');
    expect(summary.description).toMatch(/fake-db.*ECONNREFUSED.*– nothing was touched/);
    expect(journalTypes(s)[0]).not.toContain('intent:stop');
    await s.stopService();
  });

  it('a --release that does not exist exits 1 before stop', async () => {
    const s = await setup();
    const oldPid = await s.startCurrent();
    const r = await s.cli(['run', s.recipe(), '--release', 'v9']);
    expect(r.code).toBe(1);
    expect(lastSummary(r).description).toMatch(/release v9 not found/);
    expect(s.pid()).toBe(oldPid);
    expect((await s.health())?.status).toBe(200);
    await s.stopService();
  });

  it('a --release with shell metacharacters is a usage error (64) and touches nothing', async () => {
    const s = await setup();
    const r = await s.cli(['run', s.recipe(), '--release', 'x; touch /tmp/pwned'], { json: false });
    expect(r.code).toBe(64);
    expect(s.journals()).toEqual([]);
  });

  it('start exits non-zero: rolled back, exit 2, previous release serving', async () => {
    const s = await setup();
    const d = s.dir;
    for (const [id, script] of [
      ['v1', `#!/bin/sh\nexec "${join(s.dir, 'start-daemon.sh')}"\n`],
      ['v2', '#!/bin/sh\necho "v2 refuses to start: missing config" >&2\nexit 3\n'],
    ] as const) {
      writeFileSync(join(d, 'releases', id, 'start.sh'), script);
      chmodSync(join(d, 'releases', id, 'start.sh'), 0o755);
    }
    // `$!` must be node itself, not a subshell, so the pidfile names the service
    writeFileSync(join(d, 'start-daemon.sh'), `#!/bin/sh\ncd "${d}/current" || exit 1\nPORT=${s.port} WARMUP_MS=50 "${process.execPath}" server.mjs >> "${d}/log/svc.log" 2>&1 &\necho $! > "${s.pidfile}"\n`);
    chmodSync(join(d, 'start-daemon.sh'), 0o755);
    await s.startCurrent();
    const r = await s.cli(['run', s.recipe({ start: `  run: ["${d}/current/start.sh"]\n  timeout: 5s` }), '--release', 'v2']);
    expect(r.code, r.stderr).toBe(2);
    expect(lastSummary(r).description).toMatch(/start failed: step "start" exited 3: v2 refuses to start: missing config – rolled back to release v1/);
    expect(s.currentRelease()).toBe('v1');
    expect((await s.health())?.body).toMatch(/^ok v1 /);
    const types = journalTypes(s)[0] ?? [];
    expect(types).toEqual(expect.arrayContaining(['intent:rollback_activate', 'done:rollback_start', 'summary']));
    await s.stopService();
  });

  it('a gate that never passes: rolled back, exit 2, v1 serving again', async () => {
    const s = await setup({ v1: {}, v3: { broken: true } });
    await s.startCurrent();
    const r = await s.cli(['run', s.recipe(), '--release', 'v3']);
    expect(r.code, r.stderr).toBe(2);
    const summary = lastSummary(r);
    expect(summary.outcome).toBe('rolled_back');
    expect(summary.description).toMatch(/gates failed: .*healthz.*HTTP_STATUS.*503.* – rolled back to release v1, which passed its gates/);
    expect((await s.health())?.body).toMatch(/^ok v1 /);
    expect(s.currentRelease()).toBe('v1');
    await s.stopService();
  });

  it('a gate that passes then fails inside stable_for: exit 2', async () => {
    const s = await setup({ v1: {}, v2: { failAfterMs: 600 } });
    await s.startCurrent();
    const gates = `  - name: healthz\n    http: http://127.0.0.1:${s.port}/healthz\n    stable_for: 2s\n    timeout: 6s`;
    const r = await s.cli(['run', s.recipe({ gates }), '--release', 'v2']);
    expect(r.code, r.stderr).toBe(2);
    const gate = eventsOf(r, 'check_finished').find((e) => e.phase === 'gates') as { check: { status: string; error: { code: string } } };
    expect(gate.check.status).toBe('failed');
    expect(gate.check.error.code).toBe('HTTP_STATUS');
    expect((await s.health())?.body).toMatch(/^ok v1 /);
    await s.stopService();
  });

  it("the rollback's own gates fail: exit 3, with what was left and what to check", async () => {
    const s = await setup({ v1: {}, v3: { broken: true } });
    await s.startCurrent();
    // v1 answers now, but will not after a restart
    writeFileSync(join(s.dir, 'releases', 'v1', 'BROKEN'), '1');
    const r = await s.cli(['run', s.recipe(), '--release', 'v3']);
    expect(r.code, r.stderr).toBe(3);
    const summary = lastSummary(r);
    expect(summary.outcome).toBe('failed');
    expect(summary.description).toMatch(/rollback to release v1 failed in rollback_gates/);
    expect(summary.leftState?.join('\n')).toMatch(/points to .*releases\/v1[\s\S]*is running[\s\S]*recover/);
    await s.stopService();
  });

  it('an in-place restart whose gates fail has nothing to roll back to: exit 3', async () => {
    const s = await setup({ v1: {} });
    await s.startCurrent();
    writeFileSync(join(s.dir, 'releases', 'v1', 'BROKEN'), '1');
    const r = await s.cli(['run', s.recipe()]);
    expect(r.code, r.stderr).toBe(3);
    expect(lastSummary(r).description).toMatch(/in-place restart: no other release to roll back to – needs a human/);
    await s.stopService();
  });

  it('a process that ignores SIGTERM is SIGKILLed with its children after grace', async () => {
    const s = await setup({ v1: { ignoreTerm: true }, v2: {} });
        // start v1 through safe-restart itself (first run) so it runs in its own process group
    rmSync(join(s.dir, 'current'));
    const first = await s.cli(['run', s.recipe({ stop: `  signal: SIGTERM\n  pidfile: ${s.pidfile}\n  grace: 1s` }), '--release', 'v1']);
    expect(first.code, first.stderr).toBe(0);
    const r = await s.cli(['run', s.recipe({ stop: `  signal: SIGTERM\n  pidfile: ${s.pidfile}\n  grace: 1s` }), '--release', 'v2']);
    expect(r.code, r.stderr).toBe(0);
    const stop = eventsOf(r, 'step_finished').find((e) => e.phase === 'stop') as { detail: string };
    expect(stop.detail).toMatch(/SIGKILL/);
    // only v2's node process remains: v1 and its `sleep 300` child are gone
    const left = s.processesInside();
    expect(left).toEqual([s.pid()]);
    await s.stopService();
  });

  it('a stop command that hangs is bounded by its timeout and leaves no process behind', async () => {
    const s = await setup();
    await s.startCurrent();
    const stop = `  run: ["sh", "-c", "sleep 300 & sleep 300"]\n  timeout: 1s`;
    const started = Date.now();
    const r = await s.cli(['run', s.recipe({ stop }), '--release', 'v2']);
    // the rollback's stop hangs the same way: nothing can be proven, a human is needed
    expect(r.code, r.stderr).toBe(3);
    expect(Date.now() - started).toBeLessThan(30_000);
    const stopFinished = eventsOf(r, 'step_finished').find((e) => e.phase === 'stop') as { detail: string };
    expect(stopFinished.detail).toMatch(/timed out/);
    // no sleep survives: every process in the sandbox is the service itself
    const left = s.processesInside().filter((p) => p !== s.pid());
    expect(left).toEqual([]);
    await s.stopService();
  });

  it('a start script that daemonizes while holding stdout does not hang the run', async () => {
    const s = await setup();
    await s.startCurrent();
    const start = `  run: ["${join(import.meta.dirname, '..', 'fixtures', 'service', 'daemonize.sh')}", "${s.dir}/current", "${s.pidfile}"]\n  timeout: 10s\n  env:\n    PORT: "${s.port}"`;
    const r = await s.cli(['run', s.recipe({ start }), '--release', 'v2']);
    expect(r.code, r.stderr).toBe(0);
    const startStep = eventsOf(r, 'step_finished').find((e) => e.phase === 'start') as { durationMs: number };
    expect(startStep.durationMs).toBeLessThan(5_000);
    expect((await s.health())?.body).toMatch(/^ok v2 /);
    await s.stopService();
  });
});
