// No shell injection: values from --release, --var, the environment and check output never reach a shell
// as code. The canary is `x; touch <file>`: the file must never exist.
import { afterEach, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Sandbox } from '../support/sandbox.js';
import { cliPlain, fastParts, fastSandbox, teardown } from '../faults/helpers.js';

let s: Sandbox | null = null;
afterEach(async () => {
  await teardown(s);
  s = null;
});

async function setup(): Promise<{ s: Sandbox; pwned: string; canary: string }> {
  s = await fastSandbox({ v1: {}, v2: {} });
  const pwned = join(s.dir, `pwned-${process.pid}`);
  return { s, pwned, canary: `x; touch ${pwned}` };
}

const hook = (run: string) => ({ hooks: `  before_stop:\n    - name: greet\n      run: ${run}` });

describe('shell injection canary', () => {
  it('--release: refused as a usage error, nothing runs', async () => {
    const { s, pwned, canary } = await setup();
    const r = await s.cli(['run', s.recipe(fastParts(s)), '--release', canary], { json: false });
    expect(r.code).toBe(64);
    expect(existsSync(pwned)).toBe(false);
  });

  it('--var pasted into a shell-string command: refused at load (65), before anything runs', async () => {
    const { s, pwned, canary } = await setup();
    const file = s.recipe(fastParts(s, hook('echo hello ${WHO}')));
    const r = await s.cli(['run', file, '--var', `WHO=${canary}`], { json: false });
    expect(r.code, r.stderr).toBe(65);
    expect(r.stderr).toMatch(/hooks\.before_stop\[0\]\.run: \$\{WHO\} is pasted into a shell command and its value contains shell syntax \(";"\)/);
    expect(existsSync(pwned)).toBe(false);
    // a harmless value in the same place is fine
    const ok = await cliPlain(s, ['plan', file, '--var', 'WHO=world']);
    expect(ok.code, ok.stderr).toBe(0);
  });

  it('an environment variable pasted into a shell-string check: refused at load (65)', async () => {
    const { s, pwned, canary } = await setup();
    const deps = '  - name: probe\n    command: test -n ${PROBE_ARG}';
    const r = await cliPlain(s, ['check', s.recipe(fastParts(s, { dependencies: deps }))], { PROBE_ARG: canary });
    expect(r.code, r.stderr).toBe(65);
    expect(existsSync(pwned)).toBe(false);
  });

  it('the same values as argv elements or read as "$NAME" at run time are data, not code', async () => {
    const { s, pwned, canary } = await setup();
    const deps = [
      '  - name: argv',
      '    command: ["printf", "%s", "${WHO}"]',
      '  - name: from-env',
      '    command: echo "$PROBE_ARG" >/dev/null',
    ].join('\n');
    const r = await cliPlain(s, ['check', s.recipe(fastParts(s, { dependencies: deps })), '--var', `WHO=${canary}`, '--json'], { PROBE_ARG: canary });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('x; touch');
    expect(existsSync(pwned)).toBe(false);
  });

  it("a check's output is evidence, never executed", async () => {
    const { s, pwned, canary } = await setup();
    const deps = `  - name: chatty\n    command: ["printf", "%s\\n", "${canary}", "$(touch ${pwned})", "\`touch ${pwned}\`"]`;
    const r = await cliPlain(s, ['check', s.recipe(fastParts(s, { dependencies: deps })), '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('x; touch');
    expect(existsSync(pwned)).toBe(false);
  });

  it('a release id printed by release.current is refused, not run', async () => {
    const { s, pwned, canary } = await setup();
    await s.startCurrent();
    const release = `  current:\n    run: ["printf", "%s", "${canary}"]\n  activate:\n    run: ["true"]`;
    const r = await s.cli(['run', s.recipe(fastParts(s, { release }))]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toMatch(/not a release id/);
    expect(existsSync(pwned)).toBe(false);
  });
});
