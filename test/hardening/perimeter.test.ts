// The perimeter: TLS verified by default (and a loud warning when the environment turns it off), a private
// state directory, a lock that is never followed through a symlink, warnings for world-writable files, and
// HTTP checks that speak only http/https, follow no redirect unless asked, cap the body and close every socket.
import { afterEach, describe, expect, it } from 'vitest';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, symlinkSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { join } from 'node:path';
import { CLI, type Sandbox } from '../support/sandbox.js';
import { attempt } from '../../src/checks/http.js';
import type { HttpProbe } from '../../src/recipe/types.js';
import { loadRecipeText } from '../../src/recipe/load.js';
import { RecipeError } from '../../src/errors.js';
import { cliPlain, fastParts, fastSandbox, selfSignedCert, serving, summaryOf, teardown } from '../faults/helpers.js';
import { spawnSync } from 'node:child_process';

let s: Sandbox | null = null;
const servers: Array<http.Server | https.Server> = [];
afterEach(async () => {
  for (const srv of servers.splice(0)) {
    srv.closeAllConnections();
    await new Promise<void>((r) => srv.close(() => r()));
  }
  await teardown(s);
  s = null;
});

async function serve(handler: http.RequestListener, tls?: { key: Buffer; cert: Buffer }): Promise<{ port: number; server: http.Server }> {
  const server = tls ? https.createServer(tls, handler) : http.createServer(handler);
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as { port: number }).port, server };
}

const probe = (url: string, more: Partial<HttpProbe> = {}): HttpProbe =>
  ({ url, method: 'GET', status: [[200, 299]], headers: {}, followRedirects: false, insecure: false, ...more }) as HttpProbe;

async function once(p: HttpProbe, timeoutMs = 2_000) {
  const signal = AbortSignal.timeout(timeoutMs);
  return attempt(p, { signal, timeoutMs });
}

describe('TLS', () => {
  it('NODE_TLS_REJECT_UNAUTHORIZED=0 in the environment: a loud warning, and http checks still verify', async () => {
    s = await fastSandbox({ v1: {}, v2: {} });
    await s.startCurrent();
    const { key, cert } = selfSignedCert(s.dir);
    const { port } = await serve((_q, res) => res.end('ok'), { key: readFileSync(key), cert: readFileSync(cert) });
    const deps = `  - name: tls-upstream\n    http: https://127.0.0.1:${port}/\n    timeout: 1s`;
    const env = { NODE_TLS_REJECT_UNAUTHORIZED: '0' };
    const r = await s.cli(['run', s.recipe(fastParts(s, { dependencies: deps })), '--release', 'v2'], { env });
    expect(r.code).toBe(1);
    const warnings = r.events.filter((e) => e.event === 'warning').map((e) => String(e.message));
    expect(warnings.join('\n')).toMatch(/NODE_TLS_REJECT_UNAUTHORIZED=0 is set: TLS certificates are NOT verified/);
    expect(summaryOf(r).description).toMatch(/TLS_UNTRUSTED/);
    const human = await s.cli(['run', s.recipe(fastParts(s, { dependencies: deps })), '--release', 'v2'], { env, json: false });
    expect(human.stderr).toMatch(/NODE_TLS_REJECT_UNAUTHORIZED=0/);
    // check warns too (it takes no state dir, so it runs outside the sandbox's CLI helper)
    const check = spawnSync(process.execPath, [CLI, 'check', s.recipe(fastParts(s, { dependencies: deps })), '--once'], {
      env: { ...process.env, ...env },
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(check.status).toBe(1);
    expect(check.stderr).toMatch(/NODE_TLS_REJECT_UNAUTHORIZED=0 is set: TLS certificates are NOT verified/);
  });
});

describe('state directory and lock', () => {
  it('the state directory and everything safe-restart creates in it are private (0700 / 0600)', async () => {
    s = await fastSandbox({ v1: {}, v2: {} });
    await s.startCurrent();
    const r = await s.cli(['run', s.recipe(fastParts(s)), '--release', 'v2']);
    expect(r.code, r.stderr).toBe(0);
    for (const d of [s.stateDir, join(s.stateDir, 'svc'), join(s.stateDir, 'svc', 'runs')]) expect(statSync(d).mode & 0o777, d).toBe(0o700);
    for (const f of s.journalFiles()) expect(statSync(f).mode & 0o777, f).toBe(0o600);
    expect(statSync(join(s.stateDir, 'svc', 'state.json')).mode & 0o777).toBe(0o600);
  });

  it('a lock path that is a symlink is never followed: the run refuses and the target is untouched', async () => {
    s = await fastSandbox({ v1: {}, v2: {} });
    const oldPid = await s.startCurrent();
    mkdirSync(join(s.stateDir, 'svc', 'runs'), { recursive: true, mode: 0o700 });
    const victim = join(s.dir, 'victim');
    symlinkSync(victim, join(s.stateDir, 'svc', 'lock'));
    const r = await s.cli(['run', s.recipe(fastParts(s)), '--release', 'v2'], { json: false });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/lock file .* is a symbolic link: refusing to follow it/);
    expect(r.stderr).not.toMatch(/internal error|\n\s+at /);
    expect(existsSync(victim)).toBe(false);
    expect((await serving(s))?.pid).toBe(oldPid);
  });

  it('a world-writable recipe file and a world-writable state directory are warned about', async () => {
    s = await fastSandbox({ v1: {}, v2: {} });
    await s.startCurrent();
    const file = s.recipe(fastParts(s));
    chmodSync(file, 0o666);
    mkdirSync(s.stateDir, { mode: 0o700 });
    chmodSync(s.stateDir, 0o777);
    const r = await s.cli(['run', file, '--release', 'v2']);
    expect(r.code, r.stderr).toBe(0);
    const warnings = r.events.filter((e) => e.event === 'warning').map((e) => String(e.message)).join('\n');
    expect(warnings).toMatch(/the recipe file is world-writable \(mode 0666\)/);
    expect(warnings).toMatch(/state directory .* is world-writable/);
  });
});

describe('HTTP checks', () => {
  it.each(['ftp://127.0.0.1/x', 'file:///etc/passwd', 'gopher://127.0.0.1:70/', 'javascript:alert(1)'])('only http and https: %s is refused', async (url) => {
    const r = await once(probe(url));
    expect(r.ok).toBe(false);
    expect(r.error?.code).toBe('INVALID_URL');
    let loaded: string;
    try {
      loadRecipeText(`version: 1\nname: x\nstop: { run: "true" }\nstart: { run: "true" }\ngates:\n  - http: "${url}"\n`, 'r.yaml', { env: {} });
      loaded = 'accepted at load (refused when checked)';
    } catch (error) {
      expect(error).toBeInstanceOf(RecipeError);
      loaded = 'refused at load';
    }
    expect(loaded).toMatch(/refused/);
  });

  it('does not follow a redirect unless asked, and then only within bounds', async () => {
    const { port } = await serve((req, res) => {
      if (req.url === '/healthz') {
        res.writeHead(302, { location: '/elsewhere' });
        res.end();
      } else res.end('ok');
    });
    const plain = await once(probe(`http://127.0.0.1:${port}/healthz`));
    expect(plain).toMatchObject({ ok: false, error: { code: 'REDIRECT_NOT_FOLLOWED' } });
    const followed = await once(probe(`http://127.0.0.1:${port}/healthz`, { followRedirects: true }));
    expect(followed.ok).toBe(true);
    const loop = await serve((_q, res) => {
      res.writeHead(302, { location: '/again' });
      res.end();
    });
    expect(await once(probe(`http://127.0.0.1:${loop.port}/`, { followRedirects: true }))).toMatchObject({ ok: false, error: { code: 'TOO_MANY_REDIRECTS' } });
  });

  it('caps the body: an endless response ends the attempt, keeps at most 64 KiB, and the socket is closed', async () => {
    let open = 0;
    const { server, port } = await serve((_q, res) => {
      res.writeHead(200);
      const chunk = Buffer.alloc(16 * 1024, 'a');
      const pump = () => {
        while (res.write(chunk)) {
          // fill the socket buffer, then wait for drain
        }
      };
      res.on('drain', pump);
      pump();
    });
    server.on('connection', (sock) => {
      open++;
      sock.on('close', () => open--);
    });
    const started = Date.now();
    const r = await once(probe(`http://127.0.0.1:${port}/`, { body: { contains: 'never there' } }), 5_000);
    expect(Date.now() - started).toBeLessThan(4_000);
    expect(r.ok).toBe(false);
    expect(r.http?.bodySnippet.length).toBeLessThanOrEqual(64 * 1024);
    const deadline = Date.now() + 2_000;
    while (open > 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 10));
    expect(open).toBe(0);
  });

  it('every socket is closed after each attempt, whatever the outcome (keep-alive server, 30 attempts)', async () => {
    let open = 0;
    let most = 0;
    const { server, port } = await serve((req, res) => {
      if (req.url === '/slow') return; // never answers: the attempt times out
      res.writeHead(req.url === '/bad' ? 503 : 200, { connection: 'keep-alive' });
      res.end('ok');
    });
    server.keepAliveTimeout = 60_000;
    server.on('connection', (sock) => {
      most = Math.max(most, ++open);
      sock.on('close', () => open--);
    });
    const sockets = () => process.getActiveResourcesInfo().filter((k) => k === 'TCPSocketWrap').length;
    const before = sockets();
    for (let i = 0; i < 30; i++) {
      const path = ['/ok', '/bad', '/slow'][i % 3];
      await once(probe(`http://127.0.0.1:${port}${path}`), path === '/slow' ? 200 : 2_000);
      const deadline = Date.now() + 2_000;
      while (open > 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 5));
      expect(open, `attempt ${i} (${path}) left its socket open`).toBe(0);
    }
    expect(most).toBe(1);
    expect(sockets()).toBeLessThanOrEqual(before);
  });
});

describe('check commands through the CLI', () => {
  it('`check` of an https dependency with a self-signed certificate fails as untrusted by default', async () => {
    s = await fastSandbox({ v1: {} });
    const { key, cert } = selfSignedCert(s.dir);
    const { port } = await serve((_q, res) => res.end('ok'), { key: readFileSync(key), cert: readFileSync(cert) });
    const r = await cliPlain(s, ['check', s.recipe(fastParts(s, { dependencies: `  - name: tls\n    http: https://127.0.0.1:${port}/\n    attempt_timeout: 300ms\n    timeout: 500ms` })), '--json']);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toMatch(/TLS_UNTRUSTED/);
  });
});
