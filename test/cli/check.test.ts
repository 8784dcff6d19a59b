// `safe-restart check` through the built CLI (the global setup builds it), against real local servers.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

const CLI = resolve(import.meta.dirname, '..', '..', 'bin', 'safe-restart.js');
const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

function runCli(args: string[], cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    cleanups.push(() => void (child.exitCode === null && child.kill('SIGKILL')));
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolveRun({ code, stdout, stderr }));
  });
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sr-check-cli-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function writeRecipe(dir: string, body: string): string {
  const file = join(dir, 'recipe.yaml');
  writeFileSync(file, ['version: 1', 'name: svc', body, 'stop:', '  run: "true"', 'start:', '  run: "true"', ''].join('\n'));
  return file;
}

async function serveHttp(handler: http.RequestListener): Promise<number> {
  const server = http.createServer(handler);
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  );
  return (server.address() as net.AddressInfo).port;
}

async function listenTcp(): Promise<number> {
  const server = net.createServer((s) => s.destroy());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  return (server.address() as net.AddressInfo).port;
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

describe('safe-restart check', () => {
  it('exits 0 and prints a table when every dependency is ready', async () => {
    const dir = tempDir();
    const tcpPort = await listenTcp();
    const httpPort = await serveHttp((_req, res) => res.end('ok'));
    writeRecipe(
      dir,
      ['dependencies:', `  - name: broker`, `    tcp: 127.0.0.1:${tcpPort}`, `  - name: inventory`, `    http: http://127.0.0.1:${httpPort}/healthz`].join('\n'),
    );
    const r = await runCli(['check', 'recipe.yaml'], dir);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(/^NAME\s+TYPE\s+TARGET\s+STATUS\s+ATTEMPTS\s+TIME TO READY\s+LAST ERROR$/);
    expect(r.stdout).toMatch(new RegExp(`broker\\s+tcp\\s+127\\.0\\.0\\.1:${tcpPort}\\s+ready\\s+1\\s+\\S+\\s+-`));
    expect(r.stdout).toMatch(/inventory\s+http\s+.*ready/);
    expect(r.stdout).not.toContain('why not ready');
    expect(r.stdout).toContain('2 checks: 2 ready, 0 not ready');
  });

  it('exits 1 with a "why not ready" block: last cause and code, addresses, HTTP status and body; secrets redacted', async () => {
    const dir = tempDir();
    const refused = await freePort();
    // The server echoes the token it was sent: the CLI must not print it back.
    const httpPort = await serveHttp((req, res) => res.writeHead(503).end(`maintenance; you sent ${req.headers.authorization}`));
    writeRecipe(
      dir,
      [
        'dependencies:',
        '  - name: orders-db',
        `    tcp: 127.0.0.1:${refused}`,
        '    timeout: 600ms',
        '  - name: inventory',
        '    timeout: 600ms',
        '    http:',
        `      url: http://127.0.0.1:${httpPort}/healthz`,
        '      headers:',
        '        Authorization: Bearer ${API_TOKEN}',
      ].join('\n'),
    );
    const r = await runCli(['check', 'recipe.yaml', '--var', 'API_TOKEN=tok-very-secret-123'], dir);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/orders-db\s+tcp\s+.*failed\s+\d+\s+-\s+ECONNREFUSED/);
    expect(r.stdout).toContain('why not ready: orders-db (dependency, tcp');
    expect(r.stdout).toMatch(new RegExp(`error: +ECONNREFUSED: check "orders-db" not ready after 600ms \\(\\d+ attempts\\): ECONNREFUSED connect ECONNREFUSED 127\\.0\\.0\\.1:${refused}`));
    expect(r.stdout).toContain(`addresses:  127.0.0.1:${refused}`);
    expect(r.stdout).toContain('why not ready: inventory');
    expect(r.stdout).toContain('last status 503');
    expect(r.stdout).toMatch(/body: +"maintenance; you sent [^"]*\*\*\*"/);
    expect(r.stdout).toMatch(/waited: +\S+ over \d+ attempts \(timeout 600ms/);
    expect(r.stdout + r.stderr).not.toContain('tok-very-secret-123');
  });

  it('--json prints exactly the documented document', async () => {
    const dir = tempDir();
    const refused = await freePort();
    const httpPort = await serveHttp((_req, res) => res.end('ok'));
    writeRecipe(
      dir,
      ['dependencies:', `  - name: api`, `    http: http://127.0.0.1:${httpPort}/`, `  - name: db`, `    tcp: 127.0.0.1:${refused}`, '    timeout: 300ms'].join('\n'),
    );
    const r = await runCli(['check', 'recipe.yaml', '--json'], dir);
    expect(r.code).toBe(1);
    const doc = JSON.parse(r.stdout) as { ok: boolean; checks: Array<Record<string, unknown>> };
    expect(Object.keys(doc)).toEqual(['ok', 'checks']);
    expect(doc.ok).toBe(false);
    for (const c of doc.checks) expect(Object.keys(c)).toEqual(['name', 'type', 'target', 'status', 'attempts', 'elapsed_ms', 'error']);
    expect(doc.checks[0]).toMatchObject({ name: 'api', type: 'http', status: 'ready', attempts: 1, error: null });
    expect(doc.checks[1]).toMatchObject({ name: 'db', type: 'tcp', target: `127.0.0.1:${refused}`, status: 'failed', error: { code: 'ECONNREFUSED' } });
    expect(typeof doc.checks[1]?.elapsed_ms).toBe('number');
  });

  it('--once makes one attempt per check instead of waiting out the timeout', async () => {
    const dir = tempDir();
    const refused = await freePort();
    writeRecipe(dir, ['dependencies:', '  - name: db', `    tcp: 127.0.0.1:${refused}`, '    timeout: 60s'].join('\n'));
    const started = performance.now();
    const r = await runCli(['check', 'recipe.yaml', '--once', '--json'], dir);
    expect(performance.now() - started).toBeLessThan(30_000);
    expect(r.code).toBe(1);
    const doc = JSON.parse(r.stdout) as { checks: Array<{ attempts: number; error: { code: string } }> };
    expect(doc.checks[0]).toMatchObject({ attempts: 1, error: { code: 'ECONNREFUSED' } });
  });

  it('--only selects checks by name; an unknown name is a usage error (64)', async () => {
    const dir = tempDir();
    const refused = await freePort();
    const tcpPort = await listenTcp();
    writeRecipe(dir, ['dependencies:', '  - name: up', `    tcp: 127.0.0.1:${tcpPort}`, '  - name: down', `    tcp: 127.0.0.1:${refused}`].join('\n'));
    const only = await runCli(['check', 'recipe.yaml', '--only', 'up', '--json'], dir);
    expect(only.code).toBe(0);
    expect((JSON.parse(only.stdout) as { checks: Array<{ name: string }> }).checks.map((c) => c.name)).toEqual(['up']);
    const unknown = await runCli(['check', 'recipe.yaml', '--only', 'nope'], dir);
    expect(unknown.code).toBe(64);
    expect(unknown.stderr).toContain('"nope": no such check; the recipe has: up, down');
  });

  it('--gates evaluates the gates too', async () => {
    const dir = tempDir();
    const tcpPort = await listenTcp();
    const refused = await freePort();
    writeRecipe(
      dir,
      ['dependencies:', '  - name: dep', `    tcp: 127.0.0.1:${tcpPort}`, 'gates:', '  - name: healthz', `    tcp: 127.0.0.1:${refused}`, '    timeout: 300ms'].join('\n'),
    );
    expect((await runCli(['check', 'recipe.yaml'], dir)).code).toBe(0);
    const withGates = await runCli(['check', 'recipe.yaml', '--gates'], dir);
    expect(withGates.code).toBe(1);
    expect(withGates.stdout).toMatch(/^KIND\s+NAME/);
    expect(withGates.stdout).toMatch(/gate\s+healthz\s+tcp/);
    expect(withGates.stdout).toContain('why not ready: healthz (gate, tcp');
  });

  it('exits 65 on an invalid recipe', async () => {
    const dir = tempDir();
    writeRecipe(dir, ['dependencies:', '  - name: db', '    tcp: 127.0.0.1:99999'].join('\n'));
    const r = await runCli(['check', 'recipe.yaml'], dir);
    expect(r.code).toBe(65);
    expect(r.stdout).toBe('');
  });
});
