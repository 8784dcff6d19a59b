// Dependency-aware locking: `- recipe: orders-db` is ready only when that recipe (same state directory) has no run
// in progress, no unfinished run, and its last run succeeded. Through the real CLI.
import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { procStartTime } from '../../src/runner/lock.js';
import { sandboxPerTest, summaryOf, type CliResult, type Sandbox } from '../support/sandbox.js';

const setup = sandboxPerTest();
const summary = (r: CliResult) => summaryOf(r).summary as { exitCode: number; description: string };

function dbRecipe(s: Sandbox): string {
  const file = join(s.dir, 'orders-db.yaml');
  writeFileSync(file, 'version: 1\nname: orders-db\nstop: { run: "true" }\nstart: { run: "true" }\n');
  return file;
}

const service = (s: Sandbox) => s.recipe({ dependencies: `  - name: orders-db\n    recipe: orders-db\n    timeout: 1s` });

describe('a dependency on another recipe', () => {
  it('no history of it: exit 1, says so, nothing touched; after it succeeds: the run proceeds', async () => {
    const s = await setup();
    const pid = await s.startCurrent();
    const r = await s.cli(['run', service(s), '--release', 'v2']);
    expect(r.code).toBe(1);
    expect(summary(r).description).toMatch(/orders-db has no run recorded in .*nothing says it is healthy.*nothing was touched/);
    expect(s.pid()).toBe(pid);
    expect((await s.cli(['run', dbRecipe(s)])).code).toBe(0);
    const ok = await s.cli(['run', service(s), '--release', 'v2']);
    expect(ok.code, ok.stderr).toBe(0);
    await s.stopService();
  });

  it('a run of it in progress: exit 1 naming it (within the dependency\'s own timeout)', async () => {
    const s = await setup();
    const pid = await s.startCurrent();
    expect((await s.cli(['run', dbRecipe(s)])).code).toBe(0);
    // this test process plays the live holder of orders-db's lock
    const info = { runId: '20261202T020000Z-cccccc', command: 'run', pid: process.pid, procStart: procStartTime(process.pid), host: hostname(), startedAt: new Date().toISOString(), journal: '' };
    writeFileSync(join(s.stateDir, 'orders-db', 'lock'), JSON.stringify(info), { mode: 0o600 });
    const r = await s.cli(['run', service(s), '--release', 'v2']);
    expect(r.code).toBe(1);
    expect(summary(r).description).toMatch(new RegExp(`a run of orders-db is in progress: pid ${process.pid}`));
    expect(s.pid()).toBe(pid);
    const pre = await s.cli(['preflight', service(s), '--release', 'v2']);
    expect(pre.code).toBe(1);
    await s.stopService();
  });
});
