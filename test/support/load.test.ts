// Tests of the load generator itself, against real node:http servers on loopback port 0.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import { afterEach, describe, expect, it } from 'vitest';
import { LoadOptionsError, NotLoopbackError, startLoad, type LoadHandle, type LoadMode, type LoadReport } from './load.js';

const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  const errors: unknown[] = [];
  while (cleanups.length > 0) await Promise.resolve(cleanups.pop()?.()).catch((err: unknown) => errors.push(err));
  if (errors.length > 0) throw errors[0];
});

interface TestServer {
  url: string;
  server: http.Server;
  /** requests received, in arrival order */
  received: number;
  /** connections accepted */
  connections: number;
  open: Set<net.Socket>;
  /** stops listening and destroys every connection, the one carrying the current request included */
  kill(): void;
}

type Handler = (n: number, req: http.IncomingMessage, res: http.ServerResponse, srv: TestServer) => void;

const answerBlue: Handler = (n, _req, res) => res.end(`slot blue\nrequest ${n}\n`);

async function startServer(handler: Handler = answerBlue, host = '127.0.0.1'): Promise<TestServer> {
  const server = http.createServer();
  const srv: TestServer = {
    url: '',
    server,
    received: 0,
    connections: 0,
    open: new Set(),
    kill() {
      server.close();
      server.closeAllConnections();
      for (const socket of srv.open) socket.destroy();
    },
  };
  server.on('connection', (socket: net.Socket) => {
    srv.connections++;
    srv.open.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => srv.open.delete(socket));
  });
  server.on('request', (req, res) => handler(srv.received++, req, res, srv));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const { port } = server.address() as net.AddressInfo;
  srv.url = `http://${host.includes(':') ? `[${host}]` : host}:${port}/ping`;
  cleanups.push(() => {
    srv.kill();
  });
  return srv;
}

function track(handle: LoadHandle): LoadHandle {
  // bounded, so that a broken generator fails its test instead of hanging the hook
  cleanups.push(async () => {
    await within(handle.stop(), 10_000, 'stop() in cleanup');
  });
  return handle;
}

async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

async function waitFor(condition: () => boolean, ms: number, what: string): Promise<void> {
  const end = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > end) throw new Error(`${what} did not happen within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Every request is counted exactly once, in exactly one bucket. */
function expectCountedOnce(r: LoadReport): void {
  const kinds = Object.values(r.byKind).reduce((a, b) => a + b, 0);
  const served = Object.values(r.servedBy).reduce((a, b) => a + b, 0);
  expect({ inFlight: r.inFlight, total: r.ok + r.failed, kinds, served, kept: r.failures.length }).toEqual({
    inFlight: 0,
    total: r.sent,
    kinds: r.failed,
    served: r.ok,
    kept: Math.min(50, r.failed),
  });
}

const NO_FAILURES: LoadReport['byKind'] = { status5xx: 0, status4xx: 0, otherStatus: 0, reset: 0, refused: 0, timeout: 0, other: 0 };
const MODES: LoadMode[] = ['new', 'keepalive', 'mixed'];

// A server in a child process: its CPU is not ours, and it answers while this process is blocked.
async function startChildServer(delayMs = 0): Promise<{ url: string; pid: number }> {
  const script = `
    const http = require('node:http');
    const s = http.createServer((req, res) => setTimeout(() => res.end('slot blue\\n'), ${delayMs}));
    s.listen(0, '127.0.0.1', () => console.log(s.address().port));`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  cleanups.push(() => {
    child.kill('SIGKILL');
  });
  const port = await within(
    new Promise<string>((resolve, reject) => {
      child.once('error', reject);
      child.stdout.once('data', (chunk: Buffer) => resolve(chunk.toString().trim()));
    }),
    10_000,
    'the child server listening',
  );
  return { url: `http://127.0.0.1:${port}/`, pid: child.pid! };
}

function cpuMsOf(pid: number): number {
  // /proc/PID/stat fields 14 and 15: utime and stime in clock ticks (100 per second on Linux)
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

describe('steady traffic', () => {
  it.each(MODES)('%s: 200 req/s for 1 s all answer ok', async (mode) => {
    const srv = await startServer();
    const report = await within(track(startLoad({ url: srv.url, rate: 200, mode, maxDurationMs: 1_000 })).done, 10_000, 'the run');

    expectCountedOnce(report);
    expect(report.sent).toBeGreaterThanOrEqual(180);
    expect(report.sent).toBeLessThanOrEqual(220);
    expect(report.ok).toBe(report.sent);
    expect(report.failed).toBe(0);
    expect(report.byKind).toEqual(NO_FAILURES);
    expect(report.servedBy).toEqual({ 'slot blue': report.sent });
    expect(report.longestFailureWindowMs).toBe(0);
    expect(report.longestFailureWindowAtMs).toBeNull();
    expect(srv.received).toBe(report.sent);
    expect(report.latencyMs.p50).toBeGreaterThan(0);
    expect(report.latencyMs.p50).toBeLessThanOrEqual(report.latencyMs.p90);
    expect(report.latencyMs.p99).toBeLessThanOrEqual(report.latencyMs.max);
    expect(report.durationMs).toBeGreaterThanOrEqual(990);
    // the mode is what it says: one connection per request, a small pool, or half and half
    if (mode === 'new') expect(srv.connections).toBe(report.sent);
    if (mode === 'keepalive') expect(srv.connections).toBeLessThanOrEqual(32);
    if (mode === 'mixed') {
      expect(srv.connections).toBeGreaterThanOrEqual(Math.ceil(report.sent / 2));
      expect(srv.connections).toBeLessThanOrEqual(Math.ceil(report.sent / 2) + 32);
    }
  });

  it('counts ok answers by the first line of the body, and statuses by class', async () => {
    const bodies = ['slot blue\nrequest', '  slot green  \r\nrequest', ''];
    const srv = await startServer((n, _req, res) => res.end(bodies[n % 3]));
    const served = await track(startLoad({ url: srv.url, rate: 200, mode: 'keepalive', maxDurationMs: 10_000, maxRequests: 30 })).done;
    expectCountedOnce(served);
    expect(served.servedBy).toEqual({ 'slot blue': 10, 'slot green': 10, '(empty)': 10 });

    const statuses = [200, 404, 302, 500];
    const mixed = await startServer((n, _req, res) => {
      res.statusCode = statuses[n % 4]!;
      res.end(`status ${res.statusCode}`);
    });
    const strict = await track(startLoad({ url: mixed.url, rate: 200, mode: 'new', maxDurationMs: 10_000, maxRequests: 40 })).done;
    expectCountedOnce(strict);
    expect(strict.ok).toBe(10);
    expect(strict.byKind).toEqual({ ...NO_FAILURES, status4xx: 10, otherStatus: 10, status5xx: 10 });
    expect(strict.failures.find((f) => f.kind === 'status4xx')?.detail).toMatch(/^HTTP 404 /);

    const lenient = await track(
      startLoad({ url: mixed.url, rate: 200, mode: 'new', maxDurationMs: 10_000, maxRequests: 40, expectStatus: (s) => s < 500 }),
    ).done;
    expectCountedOnce(lenient);
    expect(lenient.byKind).toEqual({ ...NO_FAILURES, status5xx: 10 });
    expect(lenient.servedBy).toEqual({ 'status 200': 10, 'status 404': 10, 'status 302': 10 });
  });
});

describe('failures', () => {
  it.each(['keepalive', 'new'] as const)('%s: a 503 window is counted as status5xx and measured', async (mode) => {
    // arrivals 60..119 get 503: at 200 req/s that is the stretch from about 300 ms to about 600 ms
    const srv = await startServer((n, _req, res) => {
      res.statusCode = n >= 60 && n < 120 ? 503 : 200;
      res.end(n >= 60 && n < 120 ? 'no server available\n' : 'slot blue\n');
    });
    const report = await within(track(startLoad({ url: srv.url, rate: 200, mode, maxDurationMs: 1_000 })).done, 10_000, 'the run');

    expectCountedOnce(report);
    expect(report.byKind).toEqual({ ...NO_FAILURES, status5xx: 60 });
    expect(report.ok).toBe(report.sent - 60);
    expect(report.servedBy).toEqual({ 'slot blue': report.ok });
    expect(report.longestFailureWindowMs).toBeGreaterThanOrEqual(250);
    expect(report.longestFailureWindowMs).toBeLessThanOrEqual(450);
    expect(report.longestFailureWindowAtMs).toBeGreaterThanOrEqual(200);
    expect(report.longestFailureWindowAtMs).toBeLessThanOrEqual(450);
    expect(report.failures.every((f) => f.kind === 'status5xx' && f.detail.startsWith('HTTP 503 '))).toBe(true);
  });

  it.each(['keepalive', 'new'] as const)('%s: a server closed mid-run shows as a reset, then refused connections', async (mode) => {
    // the 81st request arrives and the server dies under it: that one is reset, every later one refused
    const srv = await startServer((n, req, res, self) => (n === 80 ? self.kill() : answerBlue(n, req, res, self)));
    const report = await within(track(startLoad({ url: srv.url, rate: 200, mode, maxDurationMs: 1_000 })).done, 10_000, 'the run');

    expectCountedOnce(report);
    expect(report.ok).toBe(80);
    expect(report.byKind.reset).toBeGreaterThanOrEqual(1);
    expect(report.byKind.refused).toBeGreaterThanOrEqual(100);
    expect(report.byKind.reset + report.byKind.refused).toBe(report.failed);
    expect(report.longestFailureWindowMs).toBeGreaterThan(0);
    // from about 400 ms to the end of the run at 1000 ms
    expect(report.longestFailureWindowMs).toBeGreaterThanOrEqual(450);
    expect(report.longestFailureWindowMs).toBeLessThanOrEqual(700);
    expect(report.failures[0]).toMatchObject({ kind: 'reset' });
    expect(report.failures.find((f) => f.kind === 'refused')?.detail).toMatch(/ECONNREFUSED/);
  });

  it('keepalive: a server that never answers times out every request, queued ones too', async () => {
    const srv = await startServer(() => {});
    const started = performance.now();
    const handle = track(startLoad({ url: srv.url, rate: 50, mode: 'keepalive', maxSockets: 2, maxDurationMs: 400, timeoutMs: 300 }));
    const report = await within(handle.done, 5_000, 'stopping by itself');
    const wallMs = performance.now() - started;

    expectCountedOnce(report);
    expect(report.sent).toBe(20);
    expect(report.byKind).toEqual({ ...NO_FAILURES, timeout: 20 });
    expect(report.failures.every((f) => /^no response within 300 ms/.test(f.detail))).toBe(true);
    // the last request goes out at 380 ms and gets 300 ms from then, queueing for one of the 2 sockets included;
    // a clock started only on getting a socket would need 10 rounds of 300 ms (3 s) through 2 sockets
    expect(wallMs).toBeGreaterThanOrEqual(670);
    expect(wallMs).toBeLessThan(2_000);
  });

  it('new: a body that stops half way times out, and says so', async () => {
    const srv = await startServer((_n, _req, res) => {
      res.writeHead(200);
      res.write('slot blue\n');
    });
    const report = await within(track(startLoad({ url: srv.url, rate: 50, mode: 'new', maxDurationMs: 200, timeoutMs: 300 })).done, 5_000, 'the run');

    expectCountedOnce(report);
    expect(report.sent).toBe(10);
    expect(srv.connections).toBe(10);
    expect(report.byKind).toEqual({ ...NO_FAILURES, timeout: 10 });
    expect(report.failures[0]?.detail).toMatch(/^body not complete within 300 ms/);
    expect(report.servedBy).toEqual({});
  });
});

describe('a stall of our own process', () => {
  it('is not blamed on the server: answers that arrived in time are read before anything is timed out', async () => {
    // every answer takes 20 ms, so requests are in flight when this process blocks for 300 ms (twice timeoutMs)
    const { url } = await startChildServer(20);
    const handle = track(startLoad({ url, rate: 200, mode: 'new', maxDurationMs: 800, timeoutMs: 150 }));
    await waitFor(() => handle.snapshot().ok >= 20, 5_000, '20 answers');
    expect(handle.snapshot().inFlight).toBeGreaterThan(0);
    // a sleep that blocks the event loop without spinning
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
    const report = await within(handle.done, 10_000, 'the run');

    expectCountedOnce(report);
    expect(report.failures).toEqual([]);
    // the schedule is kept: what fell due during the stall went out right after it
    expect(report.sent).toBeGreaterThanOrEqual(150);
    expect(report.latencyMs.max).toBeGreaterThanOrEqual(250);
  });

  it('does not hide a server that never answers: the requests in flight through the stall still time out', async () => {
    const srv = await startServer(() => {});
    const handle = track(startLoad({ url: srv.url, rate: 100, mode: 'new', maxDurationMs: 200, timeoutMs: 150 }));
    await waitFor(() => handle.snapshot().sent >= 5, 5_000, '5 requests sent');
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
    const report = await within(handle.done, 10_000, 'the run');

    expectCountedOnce(report);
    expect(report.byKind).toEqual({ ...NO_FAILURES, timeout: report.sent });
    expect(report.sent).toBe(20);
  });
});

describe('bounds', () => {
  it('maxRequests stops it by itself', async () => {
    const srv = await startServer();
    const report = await within(
      track(startLoad({ url: srv.url, rate: 200, mode: 'mixed', maxDurationMs: 60_000, maxRequests: 25 })).done,
      5_000,
      'stopping after 25 requests',
    );
    expectCountedOnce(report);
    expect(report.sent).toBe(25);
    expect(srv.received).toBe(25);
    expect(report.durationMs).toBeLessThan(2_000);
  });

  it('maxDurationMs stops it by itself', async () => {
    const srv = await startServer();
    const report = await within(track(startLoad({ url: srv.url, rate: 100, mode: 'keepalive', maxDurationMs: 300 })).done, 5_000, 'stopping after 300 ms');
    expectCountedOnce(report);
    expect(report.sent).toBeGreaterThanOrEqual(27);
    expect(report.sent).toBeLessThanOrEqual(30);
    expect(srv.received).toBe(report.sent);
  });

  it('stop() ends the run, resolves done with the same report and closes the pooled sockets', async () => {
    const srv = await startServer();
    const handle = track(startLoad({ url: srv.url, rate: 200, mode: 'keepalive', maxDurationMs: 60_000 }));
    await waitFor(() => srv.received >= 20, 5_000, '20 requests arriving');
    const during = handle.snapshot();
    expect(during.sent).toBe(during.ok + during.failed + during.inFlight);

    const report = await within(handle.stop(), 5_000, 'stop()');
    expectCountedOnce(report);
    expect(report.sent).toBeGreaterThanOrEqual(20);
    expect(report.sent).toBeLessThan(200);
    expect(srv.received).toBe(report.sent);
    expect(await handle.done).toBe(report);
    expect(handle.snapshot()).toBe(report);
    await waitFor(() => srv.open.size === 0, 5_000, 'the pooled sockets closing');
  });

  it('stop() waits for a hung request no longer than its timeout', async () => {
    const srv = await startServer(() => {});
    const handle = track(startLoad({ url: srv.url, rate: 10, mode: 'new', maxDurationMs: 60_000, timeoutMs: 500 }));
    await waitFor(() => srv.received >= 1, 5_000, 'the first request arriving');
    const stopped = performance.now();
    const report = await within(handle.stop(), 5_000, 'stop()');
    expectCountedOnce(report);
    expect(report.byKind.timeout).toBe(report.sent);
    expect(performance.now() - stopped).toBeLessThan(1_500);
  });
});

describe('loopback only', () => {
  it.each([
    'http://10.0.0.1:8080/',
    'http://192.168.1.10/',
    'http://128.0.0.1/',
    'http://0.0.0.0:80/',
    'http://localhost:8080/',
    'http://example.com/',
    'http://[::2]/',
    'http://[::ffff:10.0.0.1]/',
    'http://[fe80::1]/',
  ])('refuses %s', (url) => {
    expect(() => startLoad({ url, rate: 10, mode: 'new', maxDurationMs: 100 })).toThrow(NotLoopbackError);
    expect(() => startLoad({ url, rate: 10, mode: 'new', maxDurationMs: 100 })).toThrow(expect.objectContaining({ code: 'LOAD_NOT_LOOPBACK' }));
  });

  it('refuses other protocols and bad options', () => {
    const base = { url: 'http://127.0.0.1:1/', rate: 10, mode: 'new', maxDurationMs: 100 } as const;
    for (const bad of [
      { url: 'https://127.0.0.1:1/' },
      { url: 'not a url' },
      { rate: 0 },
      { rate: Number.NaN },
      { rate: 100_000 },
      { maxDurationMs: 0 },
      { maxRequests: 0 },
      { maxRequests: 1.5 },
      { timeoutMs: -1 },
      { mode: 'burst' as LoadMode },
    ]) {
      expect(() => startLoad({ ...base, ...bad }), JSON.stringify(bad)).toThrow(LoadOptionsError);
    }
  });

  it('accepts the rest of 127.0.0.0/8 and ::1', async () => {
    const other = await startServer(answerBlue, '127.0.0.2');
    const report = await track(startLoad({ url: other.url, rate: 100, mode: 'mixed', maxDurationMs: 10_000, maxRequests: 4 })).done;
    expect(report.ok).toBe(4);

    let six: TestServer | undefined;
    try {
      six = await startServer(answerBlue, '::1');
    } catch {
      console.log('load.test: no IPv6 loopback on this machine, [::1] not tried');
    }
    if (six) {
      const r6 = await track(startLoad({ url: six.url, rate: 100, mode: 'mixed', maxDurationMs: 10_000, maxRequests: 4 })).done;
      expect(r6.ok).toBe(4);
    }
  });
});

describe('cost', () => {
  it.each(MODES)('%s: CPU of 1 s at 200 req/s', async (mode) => {
    const { url, pid } = await startChildServer();
    const serverBefore = cpuMsOf(pid);
    const before = process.cpuUsage();
    const report = await within(track(startLoad({ url, rate: 200, mode, maxDurationMs: 1_000 })).done, 10_000, 'the run');
    const used = process.cpuUsage(before);
    const generatorMs = (used.user + used.system) / 1_000;
    const serverMs = cpuMsOf(pid) - serverBefore;

    expectCountedOnce(report);
    expect(report.failed).toBe(0);
    console.log(
      `load cost ${mode}: ${report.sent} requests in ${report.durationMs} ms – generator ${generatorMs.toFixed(0)} ms CPU ` +
        `(user ${(used.user / 1_000).toFixed(0)}, system ${(used.system / 1_000).toFixed(0)}; ` +
        `${((generatorMs * 1_000) / report.sent).toFixed(0)} µs per request), server ${serverMs} ms CPU; ` +
        `latency p50 ${report.latencyMs.p50} p99 ${report.latencyMs.p99} max ${report.latencyMs.max} ms`,
    );
    // not a benchmark: only catches a busy loop, which would burn about one core (1000 ms) in this second
    expect(generatorMs).toBeLessThan(800);
  });
});
