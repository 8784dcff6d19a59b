import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { attempt } from '../../src/checks/http.js';
import type { AttemptContext, Resolver } from '../../src/checks/types.js';
import type { HttpProbe } from '../../src/recipe/types.js';
import { freePort } from '../support/servers.js';

const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

let certDir = '';
beforeAll(() => {
  certDir = mkdtempSync(join(tmpdir(), 'sr-http-test-'));
  // Self-signed, valid for the name "localhost" only (so https://127.0.0.1 is a hostname mismatch).
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
    '-keyout', join(certDir, 'key.pem'), '-out', join(certDir, 'cert.pem'),
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost',
  ], { stdio: 'ignore' });
});
afterAll(() => {
  if (certDir) rmSync(certDir, { recursive: true, force: true });
});

function ctx(timeoutMs = 2_000, resolver?: Resolver): AttemptContext {
  return { signal: AbortSignal.timeout(timeoutMs), timeoutMs, ...(resolver ? { resolver } : {}) };
}

function probe(url: string, more: Partial<HttpProbe> = {}): HttpProbe {
  return { type: 'http', url, method: 'GET', status: [[200, 299]], headers: {}, insecure: false, followRedirects: false, ...more };
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

async function serve(handler: Handler, opts: { host?: string; tls?: boolean } = {}): Promise<{ port: number; base: string; sockets: Set<net.Socket> }> {
  const host = opts.host ?? '127.0.0.1';
  const server = opts.tls
    ? https.createServer({ key: readFileSync(join(certDir, 'key.pem')), cert: readFileSync(join(certDir, 'cert.pem')) }, handler)
    : http.createServer(handler);
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('tlsClientError', () => {});
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  const { port } = server.address() as net.AddressInfo;
  const shown = host.includes(':') ? `[${host}]` : host;
  return { port, base: `${opts.tls ? 'https' : 'http'}://${shown}:${port}`, sockets };
}


describe('http attempt: status, body, method, headers', () => {
  it('passes on 2xx and keeps the evidence', async () => {
    const { base, port } = await serve((_req, res) => res.writeHead(200, { 'x-build': '42' }).end('all good'));
    const r = await attempt(probe(`${base}/healthz`), ctx());
    expect(r).toMatchObject({ ok: true, error: null, http: { status: 200, bodySnippet: 'all good' } });
    expect(r.http?.headers['x-build']).toBe('42');
    expect(r.addresses).toEqual([`127.0.0.1:${port}`]);
  });

  it('fails a 503 with HTTP_STATUS, the status and the body snippet', async () => {
    const { base } = await serve((_req, res) => res.writeHead(503).end('warming up'));
    const r = await attempt(probe(`${base}/healthz`), ctx());
    expect(r.ok).toBe(false);
    expect(r.error?.code).toBe('HTTP_STATUS');
    expect(r.error?.message).toContain('HTTP 503');
    expect(r.error?.message).toContain('expected 2xx');
    expect(r.http).toMatchObject({ status: 503, bodySnippet: 'warming up' });
  });

  it('accepts listed statuses', async () => {
    const { base } = await serve((_req, res) => res.writeHead(401).end());
    expect((await attempt(probe(base, { status: [[401, 401]] }), ctx())).ok).toBe(true);
  });

  it('checks the body by substring and by regex', async () => {
    const { base } = await serve((_req, res) => res.writeHead(200).end('{"status":"degraded"}'));
    const miss = await attempt(probe(base, { body: { contains: '"status":"ok"' } }), ctx());
    expect(miss.ok).toBe(false);
    expect(miss.error?.code).toBe('BODY_MISMATCH');
    expect(miss.http?.bodySnippet).toBe('{"status":"degraded"}');
    expect((await attempt(probe(base, { body: { regex: '"status":"(ok|degraded)"' } }), ctx())).ok).toBe(true);
    expect((await attempt(probe(base, { body: { regex: '^ok$' } }), ctx())).error?.code).toBe('BODY_MISMATCH');
  });

  it('sends HEAD and the configured request headers', async () => {
    const seen: Array<{ method?: string; auth?: string }> = [];
    const { base } = await serve((req, res) => {
      seen.push({ method: req.method, auth: req.headers.authorization });
      res.writeHead(req.headers.authorization === 'Bearer t0k' ? 200 : 403).end('body');
    });
    const r = await attempt(probe(base, { method: 'HEAD', headers: { Authorization: 'Bearer t0k' } }), ctx());
    expect(r.ok).toBe(true);
    expect(seen).toEqual([{ method: 'HEAD', auth: 'Bearer t0k' }]);
  });

  it('reads at most 64 KiB of an endless body', async () => {
    const { base } = await serve((_req, res) => {
      res.writeHead(200);
      const chunk = Buffer.alloc(16 * 1024, 'a');
      const pump = (): void => {
        while (!res.destroyed && res.write(chunk));
        if (!res.destroyed) res.once('drain', pump);
      };
      pump();
      res.on('error', () => {});
    });
    const r = await attempt(probe(base, { body: { contains: 'aaaa' } }), ctx(5_000));
    expect(r.ok).toBe(true);
    expect(r.http?.bodySnippet.length).toBeLessThanOrEqual(1024);
  });

  it('opens a new connection for every attempt', async () => {
    const ports = new Set<number>();
    const { base } = await serve((req, res) => {
      ports.add(req.socket.remotePort ?? 0);
      res.end('ok');
    });
    for (let i = 0; i < 3; i++) expect((await attempt(probe(base), ctx())).ok).toBe(true);
    expect(ports.size).toBe(3);
  });
});

describe('http attempt: redirects', () => {
  it('fails a 3xx with REDIRECT_NOT_FOLLOWED by default', async () => {
    const { base } = await serve((req, res) => (req.url === '/old' ? res.writeHead(302, { location: '/new' }).end() : res.end('new')));
    const r = await attempt(probe(`${base}/old`), ctx());
    expect(r.ok).toBe(false);
    expect(r.error?.code).toBe('REDIRECT_NOT_FOLLOWED');
    expect(r.error?.message).toContain('/new');
    expect(r.http?.status).toBe(302);
  });

  it('follows redirects when asked, or accepts a listed 3xx', async () => {
    const { base } = await serve((req, res) => (req.url === '/old' ? res.writeHead(302, { location: '/new' }).end() : res.end('new place')));
    const followed = await attempt(probe(`${base}/old`, { followRedirects: true, body: { contains: 'new place' } }), ctx());
    expect(followed).toMatchObject({ ok: true, http: { status: 200 } });
    expect((await attempt(probe(`${base}/old`, { status: [[302, 302]] }), ctx())).ok).toBe(true);
  });

  it('stops after 5 redirects', async () => {
    const { base } = await serve((req, res) => res.writeHead(301, { location: `/r${Number(req.url?.slice(2) || 0) + 1}` }).end());
    const r = await attempt(probe(`${base}/r0`, { followRedirects: true }), ctx());
    expect(r.error?.code).toBe('TOO_MANY_REDIRECTS');
  });
});

describe('http attempt: connection failures', () => {
  it('reports ECONNREFUSED', async () => {
    const port = await freePort();
    const r = await attempt(probe(`http://127.0.0.1:${port}/`), ctx());
    expect(r.error?.code).toBe('ECONNREFUSED');
    expect(r.addresses).toEqual([`127.0.0.1:${port}`]);
  });

  it('bounds a server that accepts and never answers (slow loris) by the attempt deadline', async () => {
    const { base } = await serve(() => {});
    const started = performance.now();
    const r = await attempt(probe(base), ctx(300));
    expect(performance.now() - started).toBeLessThan(3_000);
    expect(r.error?.code).toBe('ETIMEDOUT');
    expect(r.error?.message).toMatch(/no response .* within 300ms/);
  });

  it('bounds a body that never ends by the same deadline', async () => {
    const { base } = await serve((_req, res) => {
      res.writeHead(200, { 'content-length': '100' });
      res.write('partial');
    });
    const started = performance.now();
    const r = await attempt(probe(base), ctx(300));
    expect(performance.now() - started).toBeLessThan(3_000);
    expect(r.error?.code).toBe('ETIMEDOUT');
    expect(r.error?.message).toContain('body');
  });

  it('reports a connection reset as ECONNRESET', async () => {
    const { base } = await serve((req) => req.socket.destroy());
    const r = await attempt(probe(base), ctx());
    expect(r.error?.code).toBe('ECONNRESET');
  });

  it('reports unresolvable names as ENOTFOUND (injected resolver and a real .invalid name)', async () => {
    const resolver: Resolver = async (host) => {
      throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    };
    const injected = await attempt(probe('http://api.internal/healthz'), ctx(2_000, resolver));
    expect(injected.error?.code).toBe('ENOTFOUND');
    expect(injected.error?.message).toContain('api.internal');
    const real = await attempt(probe('http://safe-restart-test.invalid/'), ctx(5_000));
    expect(['ENOTFOUND', 'EAI_AGAIN']).toContain(real.error?.code);
  });

  it('uses the injected resolver for names', async () => {
    const { port } = await serve((req, res) => res.end(req.headers.host));
    const resolver: Resolver = async () => [{ address: '127.0.0.1', family: 4 }];
    const r = await attempt(probe(`http://api.internal:${port}/`), ctx(2_000, resolver));
    expect(r).toMatchObject({ ok: true, http: { bodySnippet: `api.internal:${port}` } });
  });

  it('reaches an IPv6-only listener on [::1]', async () => {
    const { base, port } = await serve((_req, res) => res.end('v6'), { host: '::1' });
    const r = await attempt(probe(`${base}/`), ctx());
    expect(r).toMatchObject({ ok: true, addresses: [`[::1]:${port}`] });
  });
});

describe('http attempt: TLS', () => {
  it('refuses a self-signed certificate by default with TLS_UNTRUSTED', async () => {
    const { port } = await serve((_req, res) => res.end('secret'), { tls: true });
    const r = await attempt(probe(`https://localhost:${port}/`), ctx());
    expect(r.ok).toBe(false);
    expect(r.error?.code).toBe('TLS_UNTRUSTED');
    expect(r.addresses).toEqual([`127.0.0.1:${port}`]);
  });

  it('accepts it with ca:, still verifying the hostname', async () => {
    const { port } = await serve((_req, res) => res.end('secret'), { tls: true });
    const ca = join(certDir, 'cert.pem');
    expect(await attempt(probe(`https://localhost:${port}/`, { ca }), ctx())).toMatchObject({ ok: true, http: { status: 200 } });
    const wrongName = await attempt(probe(`https://127.0.0.1:${port}/`, { ca }), ctx());
    expect(wrongName.error?.code).toBe('TLS_HOSTNAME');
  });

  it('accepts anything with insecure: true', async () => {
    const { port } = await serve((_req, res) => res.end('secret'), { tls: true });
    expect((await attempt(probe(`https://127.0.0.1:${port}/`, { insecure: true }), ctx())).ok).toBe(true);
  });

  it('reports an unreadable ca file', async () => {
    const r = await attempt(probe('https://localhost:1/', { ca: join(certDir, 'missing.pem') }), ctx());
    expect(r.error?.code).toBe('CA_UNREADABLE');
  });
});
