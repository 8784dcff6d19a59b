// Names that do not resolve, through the real CLI and its real resolver (c-ares, reading /etc/resolv.conf), but
// never the machine's resolver (it stops answering after a burst of queries). Each run gets fresh network and mount
// namespaces whose /etc/resolv.conf names a DNS server the fixture runs on 127.0.0.1:53, so every query is counted
// and none leaves.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..', '..');
const CLI = join(ROOT, 'bin', 'safe-restart.js');
const HARNESS = join(ROOT, 'test', 'fixtures', 'dns', 'in-netns.mjs');
const NAME = 'no-such-host.invalid';
// Namespaces need root (or user namespaces); without them these tests cannot run without the real resolver.
const canUnshare = spawnSync('unshare', ['-mn', '--propagation', 'private', 'true']).status === 0;

interface Query {
  atMs: number;
  name: string;
  type: string;
}

interface Result {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  elapsedMs: number;
  queries: Query[];
}

const cleanups: Array<() => void> = [];
afterEach(() => {
  while (cleanups.length > 0) cleanups.pop()?.();
});

function sandbox(resolvConf: string, dependency: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'sr-dns-cli-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'resolv.conf'), resolvConf);
  const recipe = ['version: 1', 'name: svc', 'dependencies:', '  - name: orders-db', `    tcp: ${NAME}:5432`, ...dependency.map((l) => `    ${l}`), 'stop:', '  run: "true"', 'start:', '  run: "true"', ''];
  writeFileSync(join(dir, 'recipe.yaml'), recipe.join('\n'));
  return dir;
}

function inNamespaces(dir: string, mode: 'nxdomain' | 'silent', args: string[]): Promise<Result> {
  const config = JSON.stringify({ mode, cli: CLI, args, cwd: dir, killAfterMs: 30_000 });
  const script = 'mount --bind "$1" /etc/resolv.conf && ip link set lo up && exec "$2" "$3" "$4"';
  return new Promise((resolveRun, reject) => {
    const child = spawn('unshare', ['-mn', '--propagation', 'private', '--', 'sh', '-c', script, 'sh', join(dir, 'resolv.conf'), process.execPath, HARNESS, config], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    cleanups.push(() => void (child.exitCode === null && child.kill('SIGKILL')));
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const line = stdout.trim().split('\n').at(-1) ?? '';
      try {
        resolveRun(JSON.parse(line) as Result);
      } catch {
        reject(new Error(`namespace harness failed (exit ${code}): ${stderr}${stdout}`));
      }
    });
  });
}

function lookupsOf(r: Result): Query[] {
  return r.queries.filter((q) => q.name === NAME && q.type === 'A');
}

describe.skipIf(!canUnshare)('check and run on a name that does not resolve (real CLI, real resolv.conf, a DNS server of our own)', () => {
  it('check: exit 1 within 4 s naming ENOTFOUND, and one lookup a second at most (timeout 2s)', async () => {
    const dir = sandbox('nameserver 127.0.0.1\n', ['timeout: 2s']);
    const r = await inNamespaces(dir, 'nxdomain', ['check', 'recipe.yaml']);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.elapsedMs).toBeLessThan(4_000);
    expect(r.stdout).toMatch(/orders-db\s+tcp\s+.*failed\s+\d+\s+-\s+ENOTFOUND/);
    expect(r.stdout).toMatch(new RegExp(`error: +ENOTFOUND: check "orders-db" not ready after 2s \\(\\d+ attempts?\\): ENOTFOUND cannot resolve "${NAME}"`));
    expect(r.stdout).not.toContain('ETIMEDOUT');
    // The old quick re-probes asked ~50 times a second; the interval is the default 100ms.
    const lookups = lookupsOf(r);
    expect(lookups.length).toBeGreaterThanOrEqual(1);
    expect(lookups.length).toBeLessThanOrEqual(3);
    for (let i = 1; i < lookups.length; i++) expect((lookups[i]?.atMs ?? 0) - (lookups[i - 1]?.atMs ?? 0)).toBeGreaterThanOrEqual(900);
  });

  it('check --json: the whole document is written before the process exits', async () => {
    const dir = sandbox('nameserver 127.0.0.1\n', ['timeout: 1s']);
    const r = await inNamespaces(dir, 'nxdomain', ['check', 'recipe.yaml', '--json']);
    expect(r.code).toBe(1);
    const report = JSON.parse(r.stdout) as { ok: boolean; checks: Array<{ error: { code: string } | null }> };
    expect(report.ok).toBe(false);
    expect(report.checks[0]?.error?.code).toBe('ENOTFOUND');
    expect(lookupsOf(r).length).toBeLessThanOrEqual(2);
  });

  it('run --json: the summary line is flushed before the explicit exit, and names ENOTFOUND', async () => {
    const dir = sandbox('nameserver 127.0.0.1\n', ['timeout: 1s']);
    const r = await inNamespaces(dir, 'nxdomain', ['run', 'recipe.yaml', '--json', '--state-dir', join(dir, 'state')]);
    expect(r.code, r.stderr).toBe(1);
    const lines = r.stdout.trim().split('\n');
    const last = JSON.parse(lines.at(-1) ?? '{}') as { event?: string; summary?: { exitCode: number; description: string } };
    expect(last.event).toBe('summary');
    expect(last.summary?.exitCode).toBe(1);
    expect(last.summary?.description).toContain('ENOTFOUND');
    expect(last.summary?.description).not.toContain('ETIMEDOUT');
  });

  it('a resolver that never answers: one lookup pending at a time, reported as a lookup timeout, and the exit is not held', async () => {
    // glibc would wait its 8 s: a getaddrinfo in libuv's threadpool cannot be cancelled, and even process.exit()
    // waits for it (libuv joins its threads at exit). c-ares lookups are cancelled when the check ends.
    const dir = sandbox('nameserver 127.0.0.1\noptions timeout:8 attempts:1\n', ['timeout: 2s', 'attempt_timeout: 500ms']);
    const r = await inNamespaces(dir, 'silent', ['check', 'recipe.yaml']);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stdout).toMatch(new RegExp(`ETIMEDOUT: check "orders-db" not ready after 2s \\(\\d+ attempts\\): ETIMEDOUT resolving "${NAME}" timed out after 500ms`));
    // every attempt waited on the same question instead of asking again
    expect(lookupsOf(r)).toHaveLength(1);
    // the bound: deadline + attempt_timeout + 1 s (the process's start included)
    expect(r.elapsedMs).toBeLessThan(2_000 + 500 + 1_000);
  });
});
