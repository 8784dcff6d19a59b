// NginxProvider against a real nginx 1.22 (its own prefix, pidfile and error log in a temporary directory, a
// free loopback port): a switch from blue to green with a request in flight, a reload the master rejects
// (bind failure: `nginx -s reload` exits 0 all the same), and a config test that fails.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isAlive } from '../../src/process/group.js';
import { NginxProvider, type NginxProviderSpec } from '../../src/traffic/nginx.js';
import { TrafficError } from '../../src/traffic/provider.js';
import { freePort, get, startBackend, startNginx, stopAllLbs, type Backend, type NginxHandle } from '../support/lb.js';

const HAVE = spawnSync('nginx', ['-v']).status === 0;
const underCi = process.env.CI === 'true';
if (!HAVE) console.warn(`nginx tests ${underCi ? 'FAIL under CI=true' : 'skipped'}: install Debian's nginx`);

const signal = new AbortController().signal;

let dir: string;
let blue: Backend;
let green: Backend;
let n: NginxHandle;
let holder: Server | null = null;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sr-nginx-'));
  blue = await startBackend('blue');
  green = await startBackend('green');
  n = await startNginx({ dir, port: await freePort(), upstreamFile: join(dir, 'upstream.conf'), servers: { blue: blue.port } });
});

afterEach(async () => {
  await stopAllLbs();
  await new Promise<void>((resolve) => (holder ? holder.close(() => resolve()) : resolve()));
  holder = null;
  rmSync(dir, { recursive: true, force: true });
});

function provider(extra: Partial<NginxProviderSpec> = {}): NginxProvider {
  return new NginxProvider({
    upstreamFile: n.upstreamFile,
    upstream: 'app',
    servers: { blue: `127.0.0.1:${blue.port}`, green: `127.0.0.1:${green.port}` },
    test: n.testCommand,
    reload: n.reloadCommand,
    pidfile: n.pidfile,
    errorLog: n.errorLog,
    checkUrl: `http://127.0.0.1:${n.port}/`,
    reloadTimeoutMs: 4_000,
    ...extra,
  });
}

describe.skipIf(!HAVE && !underCi)('NginxProvider against a real nginx', () => {
  it('inspect and observe: blue listed, green not', async () => {
    const p = provider();
    expect(await p.inspect(signal)).toEqual({ ok: true, warnings: [] });
    expect(await p.observe(signal)).toEqual([
      { slot: 'blue', server: `127.0.0.1:${blue.port}`, status: 'UP', admin: 'ready', sessions: 0, queued: 0 },
      { slot: 'green', server: `127.0.0.1:${green.port}`, status: 'MAINT', admin: 'maint', sessions: 0, queued: 0 },
    ]);
  });

  it('blue → green: green UP through nginx, blue drained once the old workers finished the request in flight', async () => {
    const p = provider();
    const before = n.workers();
    let slowDone = false;
    const slow = get(n.port, '/?delay=1000').finally(() => (slowDone = true));
    await new Promise<void>((resolve) => {
      const t = setInterval(() => blue.inFlight > 0 && (clearInterval(t), resolve()), 5);
    });

    await p.set('green', 'ready', signal);
    const up = await p.waitUp('green', 10_000, signal);
    expect(up.ok).toBe(true);
    expect(up.detail).toMatch(new RegExp(`^green \\(127\\.0\\.0\\.1:${green.port}\\) in upstream app, reload proven, GET http://127\\.0\\.0\\.1:${n.port}/ → 200 after \\d+ms$`));

    await p.set('blue', 'drain', signal);
    // the first generation still finishes the slow request
    expect((await p.observe(signal)).find((v) => v.slot === 'blue')).toMatchObject({ status: 'MAINT', admin: 'drain', sessions: before.length });
    const drained = await p.waitDrained('blue', 10_000, signal);
    expect(drained.ok).toBe(true);
    expect(drained.detail).toMatch(/^blue drained after \d+ms: the old nginx workers \([\d, ]+\) exited$/);
    expect(slowDone).toBe(true);
    expect(await slow).toEqual({ status: 200, body: 'slot blue\n' });
    for (const pid of before) expect(isAlive(pid)).toBe(false);

    for (let i = 0; i < 5; i++) expect((await get(n.port)).body).toBe('slot green\n');
    const file = readFileSync(n.upstreamFile, 'utf8');
    expect(file).toContain(`    # safe-restart: out of rotation: server 127.0.0.1:${blue.port};`);
    expect(file).toContain(`    server 127.0.0.1:${green.port};`);
    expect(await p.snapshot(signal)).toBe(file);

    // back: the parked line returns as it was
    await p.set('blue', 'ready', signal);
    expect(readFileSync(n.upstreamFile, 'utf8')).toContain(`\n    server 127.0.0.1:${blue.port};`);
    // drain → maint changes nothing nginx sees: no reload
    const workers = n.workers();
    await p.set('green', 'drain', signal);
    const afterDrain = n.workers();
    await p.set('green', 'maint', signal);
    expect(n.workers()).toEqual(afterDrain);
    expect(afterDrain).not.toEqual(workers);
  });

  it('a configuration the master rejects at reload (bind failure) is detected, the previous file restored, blue still serving', async () => {
    holder = createServer();
    const taken = await new Promise<number>((resolve) => holder?.listen(0, '127.0.0.1', () => resolve((holder?.address() as { port: number }).port)));
    n.writeConfig({ extraListen: [taken] });
    const p = provider();
    const previous = readFileSync(n.upstreamFile, 'utf8');
    const workers = n.workers();

    const error = await p.set('green', 'ready', signal).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TrafficError);
    expect((error as TrafficError).code).toBe('SR_TRAFFIC_RELOAD_NOT_TAKEN');
    const message = (error as TrafficError).message;
    expect(message).toContain(`nginx did not take the new configuration: \`${n.reloadCommand.join(' ')}\` exited 0, but after `);
    expect(message).toMatch(new RegExp(`after \\d+ms the master \\(pid ${n.pid}\\) still runs its workers ${workers.join(', ')} and started none; its error log says: `));
    expect(message).toContain(`its error log says: [emerg] bind() to 127.0.0.1:${taken} failed (98: Address already in use) – the previous ${n.upstreamFile} is restored`);
    expect(message).toContain(`the previous ${n.upstreamFile} is restored`);

    expect(readFileSync(n.upstreamFile, 'utf8')).toBe(previous);
    expect(n.workers()).toEqual(workers);
    expect(isAlive(n.pid)).toBe(true);
    expect(await get(n.port)).toEqual({ status: 200, body: 'slot blue\n' });
    expect((await p.observe(signal)).map((v) => `${v.slot} ${v.status}`)).toEqual(['blue UP', 'green MAINT']);
  });

  it('a failing nginx -t restores the file and reloads nothing: draining the only server', async () => {
    const p = provider();
    const previous = readFileSync(n.upstreamFile, 'utf8');
    const workers = n.workers();
    const error = await p.set('blue', 'drain', signal).catch((e: unknown) => e);
    expect((error as TrafficError).code).toBe('SR_TRAFFIC_CONFIG_INVALID');
    expect((error as TrafficError).message).toMatch(
      new RegExp(`^nginx rejected ${n.upstreamFile} with 127\\.0\\.0\\.1:${blue.port} removed: ${n.testCommand.join(' ')} exited 1: \\[emerg\\] no servers are inside upstream in ${n.upstreamFile}:\\d+ – the previous file is restored, nothing was reloaded$`),
    );
    expect(readFileSync(n.upstreamFile, 'utf8')).toBe(previous);
    expect(n.workers()).toEqual(workers);
    expect(await get(n.port)).toEqual({ status: 200, body: 'slot blue\n' });
  });

  it('a failing nginx -t restores the file: a server address nginx refuses', async () => {
    const p = provider({ servers: { blue: `127.0.0.1:${blue.port}`, green: '127.0.0.1:99999' } });
    const previous = readFileSync(n.upstreamFile, 'utf8');
    const error = await p.set('green', 'ready', signal).catch((e: unknown) => e);
    expect((error as TrafficError).code).toBe('SR_TRAFFIC_CONFIG_INVALID');
    expect((error as TrafficError).message).toContain(`-t exited 1: [emerg] invalid port in upstream "127.0.0.1:99999" in ${n.upstreamFile}:3 – the previous file is restored`);
    expect(readFileSync(n.upstreamFile, 'utf8')).toBe(previous);
  });

  it('waitUp and waitDrained refuse a slot in the wrong place at once; inspect names a dead master', async () => {
    const p = provider();
    expect((await p.waitUp('green', 5_000, signal)).detail).toBe(`green (127.0.0.1:${green.port}) is not in upstream app in ${n.upstreamFile}`);
    expect((await p.waitDrained('blue', 5_000, signal)).detail).toContain('is still in upstream app: nginx sends it new requests');
    await n.stop();
    const r = await p.inspect(signal);
    expect(r.ok).toBe(false);
    expect(r.reason).toContain(`no running nginx master in the pid file ${n.pidfile}`);
  });
});
