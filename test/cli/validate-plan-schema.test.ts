// validate, schema and plan through the built CLI, as a user runs them: exit codes, stdout, stderr.
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');
const BIN = join(ROOT, 'bin', 'safe-restart.js');

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Result> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { cwd: options.cwd ?? ROOT, env: { PATH: process.env.PATH, ...options.env }, timeout: 30_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : null) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

const VALID = `version: 1
name: svc
vars:
  DB_PASSWORD: \${DB_PASSWORD:-}
dependencies:
  - postgres: postgres://app:\${DB_PASSWORD}@127.0.0.1:5432/app
  - tcp: 127.0.0.1:9092
release:
  symlink: current
  releases_dir: releases
stop: { run: systemctl stop svc }
start: { run: systemctl start svc }
gates:
  - http: http://127.0.0.1:8080/healthz
`;

let dir: string;

beforeAll(async () => {
  // The CLI under test is the compiled one; others may be mid-edit, so a type error elsewhere must not stop us
  // as long as the build emitted our files.
  spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, 'tsconfig.build.json')], { cwd: ROOT });
  if (!existsSync(join(ROOT, 'dist', 'cli.js'))) throw new Error('npm run build did not produce dist/cli.js');
  dir = await mkdtemp(join(tmpdir(), 'sr-cli-'));
  await writeFile(join(dir, 'valid.yaml'), VALID);
  await writeFile(join(dir, 'invalid.yaml'), 'version: 1\nname: svc\nstop: { run: x }\nstart: { run: y }\ngates:\n  - tcp: a:1\n    stable_for: 30s\n    timeout: 20s\n');
  await writeFile(join(dir, 'broken.yaml'), 'version: 1\nname: svc\nname: again\n');
}, 180_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('validate', () => {
  it('prints one line per valid file and exits 0', async () => {
    const r = await cli(['validate', 'valid.yaml', 'valid.yaml'], { cwd: dir });
    expect(r).toEqual({ code: 0, stdout: 'valid.yaml: ok (svc: 2 dependencies, 1 gate)\n'.repeat(2), stderr: '' });
  });

  it('validates every shipped recipe', async () => {
    const r = await cli(['validate', 'recipes/order-service.yaml', 'recipes/supervisord-worker.yaml', 'recipes/spawn-process.yaml', 'recipes/compose-service.yaml']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n')).toHaveLength(4);
  });

  it('exits 65 with every problem of every file, and no stack trace', async () => {
    const r = await cli(['validate', 'valid.yaml', 'invalid.yaml', 'broken.yaml', 'missing.yaml'], { cwd: dir });
    expect(r.code).toBe(65);
    expect(r.stdout).toBe('valid.yaml: ok (svc: 2 dependencies, 1 gate)\n');
    expect(r.stderr).toBe(
      [
        'invalid.yaml:7:17: gates[0].stable_for: 30s must be shorter than gates[0].timeout (20s)',
        'broken.yaml:3:1: duplicate key "name"',
        'missing.yaml:1:1: cannot read the recipe: no such file',
        '3 problems found; nothing was touched.',
        '',
      ].join('\n'),
    );
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('warns on stderr about a world-writable recipe but still succeeds', async () => {
    const file = join(dir, 'ww.yaml');
    await writeFile(file, VALID);
    await chmod(file, 0o666);
    const r = await cli(['validate', 'ww.yaml'], { cwd: dir });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('ww.yaml:1:1: warning: the recipe file is world-writable (mode 0666)');
  });

  it('exits 64 without a file, and 0 for --help', async () => {
    expect((await cli(['validate'])).code).toBe(64);
    const help = await cli(['validate', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: safe-restart validate FILE...');
  });
});

describe('schema', () => {
  it('prints exactly the committed restart-recipe.schema.json', async () => {
    const r = await cli(['schema']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(readFileSync(join(ROOT, 'restart-recipe.schema.json'), 'utf8'));
  });

  it('exits 64 on an unexpected argument', async () => {
    expect((await cli(['schema', 'extra'])).code).toBe(64);
    expect((await cli(['schema', '--bogus'])).code).toBe(64);
  });
});

describe('plan', () => {
  it('prints the plan in run order and exits 0', async () => {
    const r = await cli(['plan', 'valid.yaml', '--release', 'r2'], { cwd: dir });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Plan for svc (${join(dir, 'valid.yaml')})`);
    expect(r.stdout).toContain('Release: none yet → r2');
    expect(r.stdout.indexOf('1. dependencies')).toBeLessThan(r.stdout.indexOf('2. verify'));
    expect(r.stdout.indexOf('2. verify')).toBeLessThan(r.stdout.indexOf('4. stop'));
    expect(r.stdout.indexOf('4. stop')).toBeLessThan(r.stdout.indexOf('8. gates'));
    expect(r.stdout).toMatch(/Worst case: /);
  });

  it('prints JSON with --json', async () => {
    const r = await cli(['plan', 'valid.yaml', '--json'], { cwd: dir });
    expect(r.code).toBe(0);
    const plan = JSON.parse(r.stdout) as { recipe: string; phases: Array<{ phase: string }>; release: { mode: string } };
    expect(plan.recipe).toBe('svc');
    expect(plan.release.mode).toBe('in-place');
    expect(plan.phases.map((p) => p.phase)).toEqual(['dependencies', 'verify', 'before_stop', 'stop', 'release', 'start', 'after_start', 'gates', 'on_success']);
  });

  it('never prints a password given by --var or the environment', async () => {
    const viaVar = await cli(['plan', 'valid.yaml', '--var', 'DB_PASSWORD=hunter2-secret', '--json'], { cwd: dir });
    const viaEnv = await cli(['plan', 'valid.yaml'], { cwd: dir, env: { DB_PASSWORD: 'hunter3-secret' } });
    expect(viaVar.code).toBe(0);
    expect(viaEnv.code).toBe(0);
    expect(viaVar.stdout + viaVar.stderr).not.toContain('hunter2-secret');
    expect(viaEnv.stdout + viaEnv.stderr).not.toContain('hunter3-secret');
    expect(viaVar.stdout).toContain('"DB_PASSWORD": "***"');
  });

  it('never prints a password in recipe errors', async () => {
    await writeFile(join(dir, 'secret-error.yaml'), `${VALID}confirm: "\${DB_PASSWORD}"\n`);
    const r = await cli(['plan', 'secret-error.yaml', '--var', 'DB_PASSWORD=hunter4-secret'], { cwd: dir });
    expect(r.code).toBe(65);
    expect(r.stderr).toContain('secret-error.yaml:15:10: confirm: expected true or false (got "***")');
    expect(r.stderr).not.toContain('hunter4-secret');
  });

  it.each([
    ['a bad --release', ['--release', '../etc']],
    ['a malformed --var', ['--var', 'NOEQUALS']],
    ['an unknown option', ['--bogus']],
    ['two files', ['other.yaml']],
  ])('exits 64 on %s', async (_label, extra) => {
    const r = await cli(['plan', 'valid.yaml', ...extra], { cwd: dir });
    expect(r.code).toBe(64);
    expect(r.stderr).toMatch(/^safe-restart: /);
  });

  it('exits 64 when --release is given to a recipe without a release section', async () => {
    await writeFile(join(dir, 'norelease.yaml'), 'version: 1\nname: svc\nstop: { run: x }\nstart: { run: y }\n');
    const r = await cli(['plan', 'norelease.yaml', '--release', 'v2'], { cwd: dir });
    expect(r.code).toBe(64);
    expect(r.stderr).toContain('--release needs a release: section');
  });

  it('exits 65 on an invalid recipe and 64 without a file', async () => {
    expect((await cli(['plan', 'invalid.yaml'], { cwd: dir })).code).toBe(65);
    expect((await cli(['plan'], { cwd: dir })).code).toBe(64);
  });
});
