// "Truthful under real conditions": gates that fail fast, a watched service, run-time variables, verify and
// rollback readiness — through the real CLI, against real processes.
import { describe, expect, it } from 'vitest';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { CLI, eventsOf, freePort, sandboxPerTest, summaryOf, type CliResult } from '../support/sandbox.js';

const setup = sandboxPerTest();

type Summary = { outcome: string; exitCode: number; description: string; reason: string; runId: string; timeline: Array<{ phase: string; durationMs: number; result: string; detail?: string }> };
const summary = (r: CliResult) => summaryOf(r).summary as unknown as Summary;
const validate = (args: string[]) => spawnSync(process.execPath, [CLI, 'validate', ...args], { encoding: 'utf8' });
const phaseOf = (r: CliResult, phase: string) => summary(r).timeline.find((t) => t.phase === phase);

describe('gates fail fast', () => {
  it('the first definitive gate failure cancels a sibling with a 30s timeout, and the rollback begins at once', async () => {
    const s = await setup({ v1: {}, v2: {}, v3: { broken: true } });
    const oldPid = await s.startCurrent();
    // both fail against the broken v3 (and pass against v1 in the rollback); only healthz gives up early
    const gates = [
      `  - name: healthz\n    http: http://127.0.0.1:${s.port}/healthz\n    timeout: 1500ms`,
      `  - name: sidecar\n    http: http://127.0.0.1:${s.port}/healthz\n    timeout: 30s`,
    ].join('\n');
    const r = await s.cli(['run', s.recipe({ gates }), '--release', 'v3']);
    expect(r.code, r.stderr).toBe(2);
    const finished = eventsOf(r, 'check_finished').filter((e) => e.phase === 'gates').map((e) => e.check as { name: string; status: string; error: { message: string } | null });
    expect(finished.find((c) => c.name === 'healthz')).toMatchObject({ status: 'failed' });
    // the sibling says what it had seen when it was cut short
    expect(finished.find((c) => c.name === 'sidecar')).toMatchObject({ status: 'cancelled', error: { message: expect.stringMatching(/cancelled after .*HTTP_STATUS.*503/) } });
    // far below the sibling's own 30s: the phase ended with the first failure (bound generous for a noisy machine)
    expect(phaseOf(r, 'gates')?.durationMs).toBeLessThan(15_000);
    expect(summary(r).description).toMatch(/healthz.*HTTP_STATUS.*cancelled: sidecar/);
    expect((await s.health())?.body).toMatch(/^ok v1 /);
    expect(s.pid()).not.toBe(oldPid);
    await s.stopService();
  });

  it('dependencies keep reporting every not-ready check', async () => {
    const s = await setup();
    const oldPid = await s.startCurrent();
    const a = await freePort();
    const b = await freePort();
    const dependencies = `  - name: a\n    tcp: 127.0.0.1:${a}\n    timeout: 1s\n  - name: b\n    tcp: 127.0.0.1:${b}\n    timeout: 1500ms`;
    const r = await s.cli(['run', s.recipe({ dependencies }), '--release', 'v2']);
    expect(r.code).toBe(1);
    const statuses = eventsOf(r, 'check_finished').map((e) => (e.check as { status: string }).status);
    expect(statuses).toEqual(['failed', 'failed']);
    expect(s.pid()).toBe(oldPid);
    await s.stopService();
  });
});

describe('the started process is watched', () => {
  it('a spawned release that exits 1 after 300ms fails the gates at once, naming the exit and its log', async () => {
    const s = await setup({ v1: {}, v2: { exitAfterMs: 300 } });
    await s.startCurrent();
    const gates = `  - name: healthz\n    http: http://127.0.0.1:${s.port}/healthz\n    stable_for: 2s\n    timeout: 20s`;
    const r = await s.cli(['run', s.recipe({ gates }), '--release', 'v2']);
    expect(r.code, r.stderr).toBe(2);
    const gatesEntry = phaseOf(r, 'gates');
    expect(gatesEntry?.detail).toMatch(/process \d+ \(.*server\.mjs\) exited with code 1 after \d+\.\ds/);
    expect(gatesEntry?.detail).toMatch(/FATAL: cannot read config of v2/);
    // the gate's own 20s is not waited out
    expect(gatesEntry?.durationMs).toBeLessThan(10_000);
    expect(summary(r).reason).toMatch(/exited with code 1/);
    expect((await s.health())?.body).toMatch(/^ok v1 /);
    await s.stopService();
  });
});

describe('run-time variables', () => {
  it('a gate body naming ${SAFE_RESTART_RELEASE} passes forward on the target', async () => {
    const s = await setup();
    await s.startCurrent();
    const gates = `  - name: release-live\n    http: { url: "http://127.0.0.1:${s.port}/healthz", body: "ok \${SAFE_RESTART_RELEASE} " }\n    timeout: 5s`;
    const r = await s.cli(['run', s.recipe({ gates }), '--release', 'v2']);
    expect(r.code, r.stderr).toBe(0);
    expect((await s.health())?.body).toMatch(/^ok v2 /);
    await s.stopService();
  });

  it('the same gate passes during the rollback against the old release (and fails against the wrong one)', async () => {
    const s = await setup({ v1: {}, v2: {}, v3: { broken: true } });
    await s.startCurrent();
    const gates = `  - name: release-live\n    http: { url: "http://127.0.0.1:${s.port}/healthz", body: "ok \${SAFE_RESTART_RELEASE} " }\n    timeout: 1500ms`;
    const r = await s.cli(['run', s.recipe({ gates }), '--release', 'v3']);
    expect(r.code, r.stderr).toBe(2);
    expect(phaseOf(r, 'rollback_gates')?.result).toBe('ok');
    expect((await s.health())?.body).toMatch(/^ok v1 /);
    await s.stopService();
  });

  it('the old release still answering where the new one should is caught by the same gate', async () => {
    const s = await setup();
    const oldPid = await s.startCurrent();
    const gates = `  - name: release-live\n    http: { url: "http://127.0.0.1:${s.port}/healthz", body: "ok \${SAFE_RESTART_RELEASE} " }\n    timeout: 1s`;
    // a "restart" that restarts nothing: v1 keeps serving after the link moved to v2
    const r = await s.cli(['run', s.recipe({ gates, stop: '  run: "true"', start: '  run: "true"' }), '--release', 'v2']);
    expect(r.code).toBe(2);
    expect(phaseOf(r, 'gates')?.detail).toMatch(/BODY_MISMATCH/);
    expect(phaseOf(r, 'rollback_gates')?.result).toBe('ok');
    expect(s.pid()).toBe(oldPid);
    await s.stopService();
  });

  it('a command check and every step receive the SAFE_RESTART_* environment', async () => {
    const s = await setup();
    await s.startCurrent();
    const out = join(s.dir, 'env.txt');
    const hookOut = join(s.dir, 'hook.txt');
    const gates = [
      `  - name: healthz\n    http: http://127.0.0.1:${s.port}/healthz\n    timeout: 5s`,
      `  - name: env\n    command: ["sh", "-c", "env | grep ^SAFE_RESTART_ | sort > ${out}"]\n    timeout: 5s`,
    ].join('\n');
    const hooks = `  before_stop:\n    - run: "echo phase=$SAFE_RESTART_PHASE release=\${SAFE_RESTART_RELEASE} > ${hookOut}"`;
    const r = await s.cli(['run', s.recipe({ gates, hooks }), '--release', 'v2']);
    expect(r.code, r.stderr).toBe(0);
    const env = readFileSync(out, 'utf8');
    expect(env).toContain('SAFE_RESTART_RELEASE=v2\n');
    expect(env).toContain('SAFE_RESTART_TARGET_RELEASE=v2\n');
    expect(env).toContain('SAFE_RESTART_PREVIOUS_RELEASE=v1\n');
    expect(env).toContain('SAFE_RESTART_PHASE=gates\n');
    expect(env).toContain('SAFE_RESTART_NAME=svc\n');
    expect(env).toContain(`SAFE_RESTART_RUN_ID=${summary(r).runId}\n`);
    expect(readFileSync(hookOut, 'utf8')).toBe('phase=before_stop release=v2\n');
    await s.stopService();
  });

  it('a user variable named SAFE_RESTART_* is refused at load (65), and a run-time variable where nothing runs too', async () => {
    const s = await setup();
    const bad = s.recipe({ extra: 'vars:\n  SAFE_RESTART_RELEASE: mine\ndescription: "for ${SAFE_RESTART_RELEASE}"' });
    const r = validate([bad]);
    expect(r.status).toBe(65);
    expect(r.stderr).toMatch(/vars\.SAFE_RESTART_RELEASE: names starting with SAFE_RESTART_ are reserved/);
    expect(r.stderr).toMatch(/description: \$\{SAFE_RESTART_RELEASE\} is a run-time variable/);
    const flag = spawnSync(process.execPath, [CLI, 'plan', s.recipe(), '--var', 'SAFE_RESTART_PHASE=x'], { encoding: 'utf8' });
    expect(flag.status).toBe(65);
    expect(flag.stderr).toMatch(/--var SAFE_RESTART_PHASE: names starting with SAFE_RESTART_ are reserved/);
  });
});

describe('verify and rollback readiness', () => {
  it('verify failing on the target exits 1 before anything is stopped; the same pid keeps serving', async () => {
    const s = await setup({ v1: {}, v2: {}, v3: {} });
    const oldPid = await s.startCurrent();
    writeFileSync(join(s.dir, 'releases', 'v2', 'CONFIG_OK'), '1');
    const verify = `  - name: config\n    run: ["test", "-f", "${s.dir}/releases/\${SAFE_RESTART_RELEASE}/CONFIG_OK"]`;
    const r = await s.cli(['run', s.recipe({ verify }), '--release', 'v3']);
    expect(r.code).toBe(1);
    expect(summary(r).description).toMatch(/verify step "config" exited 1.*nothing was touched/);
    expect(s.pid()).toBe(oldPid);
    expect((await s.health())?.body).toMatch(new RegExp(`^ok v1 ${oldPid}`));
    expect(s.journals()[0]?.some((rec) => rec.type === 'intent' && rec.phase === 'stop')).toBe(false);
    const ok = await s.cli(['run', s.recipe({ verify }), '--release', 'v2']);
    expect(ok.code, ok.stderr).toBe(0);
    await s.stopService();
  });

  it('PREVIOUS deleted: exit 1 before stop, naming the release and its path', async () => {
    const s = await setup();
    const oldPid = await s.startCurrent();
    rmSync(join(s.dir, 'releases', 'v1'), { recursive: true });
    const r = await s.cli(['run', s.recipe(), '--release', 'v2']);
    expect(r.code).toBe(1);
    expect(summary(r).description).toMatch(new RegExp(`release v1 to roll back to is gone: ${s.dir}/releases/v1 does not exist`));
    expect(s.pid()).toBe(oldPid);
    expect((await s.health())?.status).toBe(200);
    // rollback.enabled: false runs without a way back, as asked
    const r2 = await s.cli(['run', s.recipe({ rollback: '  enabled: false' }), '--release', 'v2']);
    expect(r2.code, r2.stderr).toBe(0);
    await s.stopService();
  });
});
