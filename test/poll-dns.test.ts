// How pollCheck treats the resolver and which failures it re-probes quickly. The resolver is injected and counts
// its calls: the machine's own stops answering after a burst of queries (the CLI-level proof is test/cli/dns.test.ts).
import http from 'node:http';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { loadAttempt } from '../src/checks/registry.js';
import type { AttemptFn, AttemptResult, Resolver } from '../src/checks/types.js';
import { pollCheck, type AttemptProgress } from '../src/poll.js';
import type { CheckSpec, HttpProbe, TcpProbe } from '../src/recipe/types.js';

const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

const TIMING = { intervalMs: 100, attemptTimeoutMs: 1_000, timeoutMs: 2_500, initialDelayMs: 0, successThreshold: 1, stableForMs: 0 };

function tcpSpec(host: string, port: number, more: Partial<CheckSpec> = {}): CheckSpec {
  const probe: TcpProbe = { type: 'tcp', host, port, state: 'open' };
  return { name: 'orders-db', type: 'tcp', target: `${host}:${port}`, probe, ...TIMING, ...more };
}

function httpSpec(url: string, more: Partial<CheckSpec> = {}): CheckSpec {
  const probe: HttpProbe = { type: 'http', url, method: 'GET', status: [[200, 299]], headers: {}, insecure: false, followRedirects: false };
  return { name: 'api', type: 'http', target: url, probe, ...TIMING, ...more };
}

/** A resolver that records when it was asked and answers with `answer(callNumber)`. */
function countingResolver(answer: (n: number, host: string) => Promise<Array<{ address: string; family: number }>>): { resolver: Resolver; calls: number[] } {
  const calls: number[] = [];
  const t0 = performance.now();
  const resolver: Resolver = (host) => {
    calls.push(performance.now() - t0);
    return answer(calls.length, host);
  };
  return { resolver, calls };
}

const notFound = (host: string): Promise<never> => Promise.reject(Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' }));
const never = (): Promise<never> => new Promise(() => {});

/** An attempt function that fails with `code` every time and counts its calls (quick re-probes included). */
function failingWith(code: string): { attempt: AttemptFn; calls: () => number } {
  let calls = 0;
  const attempt: AttemptFn = async () => {
    calls += 1;
    return { ok: false, detail: code, error: { code, message: `${code} (simulated)` } };
  };
  return { attempt, calls: () => calls };
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function gaps(calls: number[]): number[] {
  return calls.slice(1).map((t, i) => t - (calls[i] ?? 0));
}

describe('lookups: at most one per max(interval, 1 s) per check, none while one is pending', () => {
  it('a name that does not exist is asked about once a second, not on every 100ms attempt, and reported as ENOTFOUND', async () => {
    const { resolver, calls } = countingResolver((_n, host) => notFound(host));
    const outcome = await pollCheck(tcpSpec('orders-db.internal', 5432), { resolver });
    expect(outcome.status).toBe('failed');
    expect(outcome.error?.code).toBe('ENOTFOUND');
    expect(outcome.error?.message).toMatch(/^check "orders-db" not ready after 2\.5s \(\d+ attempts\): ENOTFOUND cannot resolve "orders-db\.internal": getaddrinfo ENOTFOUND/);
    // 2.5 s of 100ms attempts: 25 attempts, but the resolver is asked at 0, 1 and 2 s only
    expect(outcome.attempts).toBeGreaterThan(10);
    expect(calls.length).toBeGreaterThanOrEqual(2);
    expect(calls.length).toBeLessThanOrEqual(3);
    for (const gap of gaps(calls)) expect(gap).toBeGreaterThanOrEqual(950);
  });

  it('an interval longer than a second is the gap', async () => {
    const { resolver, calls } = countingResolver((_n, host) => notFound(host));
    await pollCheck(tcpSpec('orders-db.internal', 5432, { intervalMs: 1_200, timeoutMs: 3_000 }), { resolver });
    expect(calls.length).toBeLessThanOrEqual(3);
    for (const gap of gaps(calls)) expect(gap).toBeGreaterThanOrEqual(1_150);
  });

  it('http checks are limited the same way', async () => {
    const { resolver, calls } = countingResolver((_n, host) => notFound(host));
    const outcome = await pollCheck(httpSpec('http://api.internal:8080/healthz'), { resolver });
    expect(outcome.error?.code).toBe('ENOTFOUND');
    expect(calls.length).toBeLessThanOrEqual(3);
    for (const gap of gaps(calls)) expect(gap).toBeGreaterThanOrEqual(950);
  });

  it('a lookup that hangs is shared by the attempts that follow, never asked again while pending', async () => {
    const { resolver, calls } = countingResolver(never);
    const outcome = await pollCheck(tcpSpec('orders-db.internal', 5432, { attemptTimeoutMs: 300 }), { resolver });
    expect(outcome.attempts).toBeGreaterThan(3);
    expect(calls).toHaveLength(1);
    expect(outcome.error?.code).toBe('ETIMEDOUT');
    expect(outcome.error?.message).toContain('resolving "orders-db.internal" timed out after 300ms');
  });

  it('a pending lookup is not cancelled by the attempt that asked (the next ones wait on it), only when the check ends', async () => {
    const signals: AbortSignal[] = [];
    const resolver: Resolver = (_host, options) => {
      if (options?.signal) signals.push(options.signal);
      return never();
    };
    const abortedAtAttempt: boolean[] = [];
    const outcome = await pollCheck(tcpSpec('orders-db.internal', 5432, { attemptTimeoutMs: 200, timeoutMs: 1_000 }), {
      resolver,
      onAttempt: () => abortedAtAttempt.push(signals[0]?.aborted ?? true),
    });
    expect(outcome.attempts).toBeGreaterThan(2);
    expect(signals).toHaveLength(1);
    expect(abortedAtAttempt).toEqual(abortedAtAttempt.map(() => false));
    expect(signals[0]?.aborted).toBe(true);
  });

  it('keeps the resolver\'s answer as the cause when it then stops answering (not "ETIMEDOUT resolving")', async () => {
    const { resolver, calls } = countingResolver((n, host) => (n === 1 ? notFound(host) : never()));
    const outcome = await pollCheck(tcpSpec('orders-db.internal', 5432, { attemptTimeoutMs: 300 }), { resolver });
    expect(calls).toHaveLength(2);
    expect(outcome.last?.error?.code).toBe('ETIMEDOUT');
    expect(outcome.error?.code).toBe('ENOTFOUND');
    expect(outcome.error?.message).toContain('ENOTFOUND cannot resolve "orders-db.internal": getaddrinfo ENOTFOUND orders-db.internal');
    expect(outcome.error?.message).toContain('later lookups got no answer within attempt_timeout 300ms');
  });

  it('an old "no such name" is not blamed once the name has resolved since', async () => {
    const port = await freePort();
    const { resolver, calls } = countingResolver((n, host) => (n === 1 ? notFound(host) : n === 2 ? Promise.resolve([{ address: '127.0.0.1', family: 4 }]) : never()));
    const outcome = await pollCheck(tcpSpec('orders-db.internal', port, { attemptTimeoutMs: 300, timeoutMs: 2_800 }), { resolver });
    expect(calls).toHaveLength(3);
    expect(outcome.error?.code).toBe('ETIMEDOUT');
    expect(outcome.error?.message).toContain('resolving "orders-db.internal" timed out after 300ms');
  });

  it('a resolved name is reused by the quick re-probes of a refused port: one lookup a second, many connects', async () => {
    const port = await freePort();
    const { resolver, calls } = countingResolver(async () => [{ address: '127.0.0.1', family: 4 }]);
    const tcp = await loadAttempt('tcp');
    let probes = 0;
    const counted: AttemptFn = (probe, ctx) => {
      probes += 1;
      return tcp(probe, ctx);
    };
    const outcome = await pollCheck(tcpSpec('orders-db.internal', port, { intervalMs: 500, timeoutMs: 1_800 }), { resolver, attempt: counted });
    expect(outcome.error?.code).toBe('ECONNREFUSED');
    expect(probes).toBeGreaterThan(outcome.attempts * 2);
    expect(calls.length).toBeLessThanOrEqual(2);
  });

  it('the system resolver is the default: localhost (from /etc/hosts) resolves and connects', async () => {
    const server = net.createServer((s) => s.destroy());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const { port } = server.address() as net.AddressInfo;
    const outcome = await pollCheck(tcpSpec('localhost', port));
    expect(outcome.status).toBe('ready');
    expect(outcome.last?.addresses).toEqual([`127.0.0.1:${port}`]);
  });

  it('http checks go through the same default resolver', async () => {
    const server = http.createServer((_req, res) => res.end('ok'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const { port } = server.address() as net.AddressInfo;
    const outcome = await pollCheck(httpSpec(`http://localhost:${port}/healthz`));
    expect(outcome.status).toBe('ready');
    expect(outcome.last?.addresses).toEqual([`127.0.0.1:${port}`]);
  });
});

describe('quick re-probes: refused, reset and HTTP status failures only', () => {
  const spec = tcpSpec('127.0.0.1', 1, { intervalMs: 500, timeoutMs: 1_400 });

  it.each(['ECONNREFUSED', 'ECONNRESET', 'HTTP_STATUS'])('%s is probed again within the interval', async (code) => {
    const { attempt, calls } = failingWith(code);
    const outcome = await pollCheck(spec, { attempt });
    expect(outcome.error?.code).toBe(code);
    // 3 counted attempts, each followed by up to 4 quick re-probes
    expect(calls()).toBeGreaterThan(outcome.attempts * 2);
  });

  it.each(['ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'TLS_UNTRUSTED'])('%s is not: one attempt per interval', async (code) => {
    const { attempt, calls } = failingWith(code);
    const outcome = await pollCheck(spec, { attempt });
    expect(outcome.error?.code).toBe(code);
    expect(calls()).toBe(outcome.attempts);
    expect(outcome.attempts).toBeLessThanOrEqual(3);
  });

  it('a real HTTP 503 still gets quick re-probes', async () => {
    let requests = 0;
    const server = http.createServer((_req, res) => {
      requests += 1;
      res.writeHead(503, { connection: 'close' }).end('starting');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const { port } = server.address() as net.AddressInfo;
    const outcome = await pollCheck(httpSpec(`http://127.0.0.1:${port}/healthz`, { intervalMs: 500, timeoutMs: 1_400 }));
    expect(outcome.error?.code).toBe('HTTP_STATUS');
    expect(requests).toBeGreaterThan(outcome.attempts * 2);
  });
});

describe('onAttempt progress', () => {
  it('says a passing check is passing, and how long of its stable_for it has kept passing', async () => {
    let n = 0;
    const attempt: AttemptFn = async () => {
      n += 1;
      // not a code that is re-probed quickly, so each failure is a counted attempt
      return n <= 2 ? { ok: false, detail: 'timed out', error: { code: 'ETIMEDOUT', message: 'timed out' } } : { ok: true, detail: 'connected', error: null };
    };
    const seen: Array<{ ok: boolean; progress: AttemptProgress }> = [];
    const outcome = await pollCheck(tcpSpec('127.0.0.1', 1, { intervalMs: 100, successThreshold: 2, stableForMs: 400 }), {
      attempt,
      onAttempt: (_n, r: AttemptResult, progress) => seen.push({ ok: r.ok, progress }),
    });
    expect(outcome.status).toBe('ready');
    const failing = seen.filter((s) => !s.ok);
    expect(failing.length).toBeGreaterThanOrEqual(1);
    for (const s of failing) expect(s.progress).toEqual({});
    const passing = seen.filter((s) => s.ok).map((s) => s.progress);
    // the first pass is short of success_threshold: passing, not yet stable
    expect(passing[0]).toEqual({ passing: true });
    expect(passing[1]).toEqual({ passing: true, stableForMs: 0, stableRequiredMs: 400 });
    const stable = passing.slice(1).map((p) => p.stableForMs ?? -1);
    expect(stable).toEqual([...stable].sort((a, b) => a - b));
    expect(stable.at(-1)).toBeGreaterThanOrEqual(400);
  });
});
