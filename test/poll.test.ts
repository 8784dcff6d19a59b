import http from 'node:http';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { loadAttempt } from '../src/checks/registry.js';
import { checkAll, toJsonReport } from '../src/checks/run.js';
import type { AttemptResult, Resolver } from '../src/checks/types.js';
import { formatDuration, pollCheck } from '../src/poll.js';
import type { CheckSpec, HttpProbe, TcpProbe } from '../src/recipe/types.js';
import { freePort } from './support/servers.js';

const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

const TIMING = { intervalMs: 100, attemptTimeoutMs: 1_000, timeoutMs: 10_000, initialDelayMs: 0, successThreshold: 1, stableForMs: 0 };

function tcpSpec(port: number, more: Partial<CheckSpec> = {}, host = '127.0.0.1'): CheckSpec {
  const probe: TcpProbe = { type: 'tcp', host, port, state: 'open' };
  return { name: 'orders-db', type: 'tcp', target: `${host}:${port}`, probe, ...TIMING, ...more };
}

function httpSpec(url: string, more: Partial<CheckSpec> = {}, probeMore: Partial<HttpProbe> = {}): CheckSpec {
  const probe: HttpProbe = { type: 'http', url, method: 'GET', status: [[200, 299]], headers: {}, insecure: false, followRedirects: false, ...probeMore };
  return { name: 'api', type: 'http', target: url, probe, ...TIMING, ...more };
}

function track(server: net.Server): void {
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        if (!server.listening) return resolve();
        server.close(() => resolve());
      }),
  );
}

async function serveHttp(handler: http.RequestListener): Promise<string> {
  const server = http.createServer(handler);
  track(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/healthz`;
}


describe('pollCheck', () => {
  it('notices a tcp dependency that comes up 1s after the check starts, promptly', async () => {
    const port = await freePort();
    const server = net.createServer();
    track(server);
    let openedAt = 0;
    const timer = setTimeout(() => server.listen(port, '127.0.0.1', () => (openedAt = performance.now())), 1_000);
    cleanups.push(() => clearTimeout(timer));
    const outcome = await pollCheck(tcpSpec(port));
    const noticedAfter = performance.now() - openedAt;
    expect(outcome).toMatchObject({ status: 'ready', error: null, cancelled: false });
    expect(outcome.attempts).toBeGreaterThan(1);
    expect(outcome.elapsedMs).toBeGreaterThanOrEqual(900);
    // Generous: the design notices within ~interval/5; a whole extra interval-multiple would be a regression.
    expect(noticedAfter).toBeLessThan(400);
  });

  it('waits through HTTP 503 and passes on 200', async () => {
    const flipAt = performance.now() + 500;
    const url = await serveHttp((_req, res) => (performance.now() < flipAt ? res.writeHead(503).end('starting') : res.writeHead(200).end('ok')));
    const seen: number[] = [];
    const outcome = await pollCheck(httpSpec(url), { onAttempt: (_n, r) => seen.push(r.http?.status ?? 0) });
    expect(outcome.status).toBe('ready');
    expect(outcome.last?.http?.status).toBe(200);
    expect(seen).toContain(503);
    expect(seen.at(-1)).toBe(200);
    expect(outcome.elapsedMs).toBeLessThan(5_000);
  });

  it('honours the overall timeout and reports the last real cause, naming the check', async () => {
    const port = await freePort();
    const outcome = await pollCheck(tcpSpec(port, { timeoutMs: 1_000, attemptTimeoutMs: 500 }));
    expect(outcome.status).toBe('failed');
    expect(outcome.elapsedMs).toBeGreaterThanOrEqual(800);
    expect(outcome.elapsedMs).toBeLessThan(1_000 + 500 + 1_000);
    expect(outcome.error?.code).toBe('ECONNREFUSED');
    expect(outcome.error?.message).toMatch(
      new RegExp(`^check "orders-db" not ready after 1s \\(\\d+ attempts\\): ECONNREFUSED connect ECONNREFUSED 127\\.0\\.0\\.1:${port}$`),
    );
  });

  it('keeps a slow-loris server to one attempt_timeout per attempt, and says so at the end', async () => {
    const url = await serveHttp(() => {});
    const outcome = await pollCheck(httpSpec(url, { timeoutMs: 1_000, attemptTimeoutMs: 300 }));
    expect(outcome.status).toBe('failed');
    expect(outcome.elapsedMs).toBeLessThan(1_000 + 300 + 1_000);
    expect(outcome.attempts).toBeGreaterThanOrEqual(2);
    expect(outcome.error?.code).toBe('ETIMEDOUT');
    expect(outcome.error?.message).toMatch(/^check "api" not ready after 1s .*no response from .* within 300ms/);
  });

  it('reports the last HTTP status and body when it times out on a 503', async () => {
    const url = await serveHttp((_req, res) => res.writeHead(503).end('db down'));
    const outcome = await pollCheck(httpSpec(url, { timeoutMs: 600 }));
    expect(outcome.error?.code).toBe('HTTP_STATUS');
    expect(outcome.error?.message).toContain('HTTP 503');
    expect(outcome.last?.http).toMatchObject({ status: 503, bodySnippet: 'db down' });
  });

  it('requires success_threshold consecutive passes: a flapping server never gets there', async () => {
    let n = 0;
    const url = await serveHttp((_req, res) => res.writeHead(n++ % 2 === 0 ? 200 : 503).end());
    const outcome = await pollCheck(httpSpec(url, { timeoutMs: 1_500, successThreshold: 3 }));
    expect(outcome.status).toBe('failed');
    expect(outcome.error?.code).toBe('HTTP_STATUS');
    expect(outcome.error?.message).toMatch(/check "api" not ready after 1\.5s .*(only 1 of 3 consecutive passes|HTTP 503)/);
  });

  it('passes success_threshold on a steady server, one attempt per pass', async () => {
    const url = await serveHttp((_req, res) => res.end('ok'));
    const outcome = await pollCheck(httpSpec(url, { successThreshold: 3 }));
    expect(outcome).toMatchObject({ status: 'ready', attempts: 3 });
    expect(outcome.elapsedMs).toBeGreaterThanOrEqual(150);
  });

  it('stable_for catches a server that fails ~2s after first passing', async () => {
    let firstPass = 0;
    const url = await serveHttp((_req, res) => {
      firstPass ||= performance.now();
      res.writeHead(performance.now() - firstPass < 2_000 ? 200 : 503).end();
    });
    const outcome = await pollCheck(httpSpec(url, { stableForMs: 5_000, timeoutMs: 20_000 }));
    expect(outcome.status).toBe('failed');
    expect(outcome.error?.code).toBe('HTTP_STATUS');
    expect(outcome.error?.message).toMatch(/^check "api" passed at \S+ but failed during stable_for 5s \(attempt \d+\): HTTP_STATUS HTTP 503/);
    // It fails at once, not at the end of stable_for or of the timeout.
    expect(outcome.elapsedMs).toBeGreaterThanOrEqual(1_900);
    expect(outcome.elapsedMs).toBeLessThan(4_500);
  });

  it('stable_for passes a server that keeps passing', async () => {
    const url = await serveHttp((_req, res) => res.end('ok'));
    const outcome = await pollCheck(httpSpec(url, { stableForMs: 500 }));
    expect(outcome.status).toBe('ready');
    expect(outcome.elapsedMs).toBeGreaterThanOrEqual(500);
    expect(outcome.attempts).toBeGreaterThanOrEqual(5);
  });

  it('fails when the timeout ends inside stable_for', async () => {
    const url = await serveHttp((_req, res) => res.end('ok'));
    const outcome = await pollCheck(httpSpec(url, { stableForMs: 5_000, timeoutMs: 600 }));
    expect(outcome.status).toBe('failed');
    expect(outcome.error?.code).toBe('STABLE_FOR_INCOMPLETE');
  });

  it('waits initial_delay before the first attempt', async () => {
    const url = await serveHttp((_req, res) => res.end('ok'));
    const outcome = await pollCheck(httpSpec(url, { initialDelayMs: 300 }));
    expect(outcome).toMatchObject({ status: 'ready', attempts: 1 });
    expect(outcome.elapsedMs).toBeGreaterThanOrEqual(280);
  });

  it('--once makes exactly one attempt', async () => {
    const port = await freePort();
    const outcome = await pollCheck(tcpSpec(port), { once: true });
    expect(outcome).toMatchObject({ status: 'failed', attempts: 1, error: { code: 'ECONNREFUSED' } });
    expect(outcome.error?.message).toMatch(/^check "orders-db" not ready \(1 attempt, --once\): ECONNREFUSED/);
  });

  it('resolves promptly with cancelled: true when aborted, even mid-attempt', async () => {
    const url = await serveHttp(() => {});
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), 300);
    cleanups.push(() => clearTimeout(timer));
    const started = performance.now();
    const outcome = await pollCheck(httpSpec(url, { attemptTimeoutMs: 30_000, timeoutMs: 60_000 }), { signal: controller.signal });
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(outcome).toMatchObject({ status: 'failed', cancelled: true, error: { code: 'CANCELLED' } });
    expect(outcome.error?.message).toMatch(/^check "api" cancelled after/);
  });

  it('cuts off an attempt that ignores its signal at attempt_timeout', async () => {
    const stuck = (): Promise<AttemptResult> => new Promise(() => {});
    const outcome = await pollCheck(tcpSpec(1, { attemptTimeoutMs: 200, timeoutMs: 500 }), { attempt: stuck });
    expect(outcome.status).toBe('failed');
    expect(outcome.error?.code).toBe('ETIMEDOUT');
    expect(outcome.elapsedMs).toBeLessThan(500 + 200 + 1_000);
  });

  it('turns an attempt that throws into a failed attempt, not a crash', async () => {
    const boom = async (): Promise<AttemptResult> => {
      throw Object.assign(new Error('driver exploded'), { code: 'EBOOM' });
    };
    const outcome = await pollCheck(tcpSpec(1, { timeoutMs: 300 }), { attempt: boom });
    expect(outcome.error).toMatchObject({ code: 'EBOOM' });
    expect(outcome.error?.message).toContain('driver exploded');
  });

  it('passes the injected resolver to the attempt: a name with two addresses, first refused', async () => {
    const server = net.createServer();
    track(server);
    await new Promise<void>((resolve) => server.listen({ port: 0, host: '::1', ipv6Only: true }, resolve));
    const { port } = server.address() as net.AddressInfo;
    const resolver: Resolver = async () => [
      { address: '127.0.0.1', family: 4 },
      { address: '::1', family: 6 },
    ];
    const outcome = await pollCheck(tcpSpec(port, {}, 'db.internal'), { resolver });
    expect(outcome.status).toBe('ready');
    expect(outcome.last?.addresses).toEqual([`127.0.0.1:${port}`, `[::1]:${port}`]);
  });
});

describe('checkAll and the JSON report', () => {
  it('runs checks concurrently and reports each in the documented shape', async () => {
    const url = await serveHttp((_req, res) => res.end('ok'));
    const port = await freePort();
    const started = performance.now();
    const report = await checkAll([httpSpec(url), tcpSpec(port, { timeoutMs: 800 }), tcpSpec(port, { name: 'cache', timeoutMs: 800 })]);
    // Concurrent: two 800ms timeouts do not add up.
    expect(performance.now() - started).toBeLessThan(1_500);
    expect(report.ok).toBe(false);
    const json = toJsonReport(report);
    expect(Object.keys(json)).toEqual(['ok', 'checks']);
    expect(json.checks.map((c) => Object.keys(c))).toEqual(
      Array(3).fill(['name', 'type', 'target', 'status', 'attempts', 'elapsed_ms', 'error']),
    );
    expect(json.checks[0]).toMatchObject({ name: 'api', type: 'http', status: 'ready', error: null, attempts: 1 });
    expect(json.checks[1]).toMatchObject({ name: 'orders-db', type: 'tcp', status: 'failed', error: { code: 'ECONNREFUSED' } });
    expect(Object.keys(json.checks[1]?.error ?? {})).toEqual(['code', 'message']);
    expect(JSON.parse(JSON.stringify(json))).toEqual(json);
  });

  it('is ok when every check is ready', async () => {
    const url = await serveHttp((_req, res) => res.end('ok'));
    expect((await checkAll([httpSpec(url), httpSpec(url, { name: 'api-2' })])).ok).toBe(true);
  });
});

describe('registry and helpers', () => {
  it('loads tcp and http attempt functions lazily', async () => {
    expect(typeof (await loadAttempt('tcp'))).toBe('function');
    expect(typeof (await loadAttempt('http'))).toBe('function');
  });

  it('formats durations the way recipes write them', () => {
    expect(formatDuration(250)).toBe('250ms');
    expect(formatDuration(1_500)).toBe('1.5s');
    expect(formatDuration(60_000)).toBe('1m');
    expect(formatDuration(90_000)).toBe('1m30s');
  });
});
