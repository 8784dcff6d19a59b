// --state-dir on the commands that only read the state directory (plan, check, history, status), through the
// built CLI: accepted wherever the README lists it, refused (64) when it cannot be a directory, never created.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const CLI = resolve(import.meta.dirname, '..', '..', 'bin', 'safe-restart.js');
let dir: string;

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(process.execPath, [CLI, ...args], { cwd: dir, env: { PATH: process.env.PATH }, timeout: 30_000 }, (error, stdout, stderr) => {
      done({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, stdout, stderr });
    });
  });
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sr-state-dir-'));
  mkdirSync(join(dir, 'state'), { mode: 0o700 });
  writeFileSync(join(dir, 'a-file'), '');
  // a command check that is ready at once: check needs no server
  writeFileSync(join(dir, 'r.yaml'), 'version: 1\nname: svc\ndependencies:\n  - command: ["true"]\nstop: { run: "true" }\nstart: { run: "true" }\n');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const COMMANDS: Array<[string, string[]]> = [
  ['plan', ['plan', 'r.yaml']],
  ['check', ['check', 'r.yaml']],
  ['history', ['history']],
  ['status', ['status']],
];

describe('--state-dir on read-only commands', () => {
  it.each(COMMANDS)('%s accepts an existing directory and one that does not exist yet (never creating it)', async (_name, args) => {
    const existing = await cli([...args, '--state-dir', join(dir, 'state')]);
    expect(existing.code, existing.stderr).toBe(0);
    const missing = await cli([...args, '--state-dir', join(dir, 'not-yet')]);
    expect(missing.code, missing.stderr).toBe(0);
    expect(existsSync(join(dir, 'not-yet'))).toBe(false);
  });

  it.each(COMMANDS)('%s refuses a --state-dir that is a file, or empty, with exit 64', async (_name, args) => {
    const file = await cli([...args, '--state-dir', join(dir, 'a-file')]);
    expect(file.code).toBe(64);
    expect(file.stderr).toContain(`--state-dir ${join(dir, 'a-file')} is not a directory`);
    const below = await cli([...args, '--state-dir', join(dir, 'a-file', 'sub')]);
    expect(below.code).toBe(64);
    const empty = await cli([...args, '--state-dir=']);
    expect(empty.code).toBe(64);
    expect(empty.stderr).toContain('--state-dir needs a directory (got "")');
  });
});
