// HaproxyProvider against a real HAProxy 2.6 (master-worker, its own config and sockets in a temporary
// directory, free loopback ports): inspect, observe, drain while a request is in flight, ready → UP, an
// agent-check that answers "ready", the server-state-file across a reload, and HAProxy's own refusals.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HaproxyProvider, parseServersState } from '../../src/traffic/haproxy.js';
import { TrafficError } from '../../src/traffic/provider.js';
import { freePort, get, startAgent, startBackend, startHaproxy, stopAllLbs, type Backend, type HaproxyHandle, type StartHaproxyOptions } from '../support/lb.js';

const HAVE = spawnSync('haproxy', ['-v']).status === 0;
const underCi = process.env.CI === 'true';
if (!HAVE) console.warn(`haproxy tests ${underCi ? 'FAIL under CI=true' : 'skipped'}: install Debian's haproxy`);

const signal = new AbortController().signal;

let dir: string;
let blue: Backend;
let green: Backend;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sr-haproxy-'));
  blue = await startBackend('blue');
  green = await startBackend('green');
});

afterEach(async () => {
  await stopAllLbs();
  rmSync(dir, { recursive: true, force: true });
});

async function haproxy(extra: Partial<StartHaproxyOptions> = {}): Promise<HaproxyHandle> {
  return startHaproxy({ dir, port: await freePort(), servers: { blue: blue.port, green: green.port }, disabled: ['green'], stateFile: true, ...extra });
}

function provider(h: HaproxyHandle, extra: { socket?: string; stateFile?: string | null } = {}): HaproxyProvider {
  const stateFile = extra.stateFile === null ? undefined : (extra.stateFile ?? h.stateFile);
  return new HaproxyProvider({ socket: extra.socket ?? h.adminSocket, backend: 'app', servers: { blue: 'blue', green: 'green' }, ...(stateFile ? { stateFile } : {}) });
}

async function statusOf(p: HaproxyProvider, slot: string): Promise<string> {
  return (await p.observe(signal)).find((v) => v.slot === slot)?.status ?? 'missing';
}

/** Polls until cond() holds; throws after timeoutMs. */
async function eventually(what: string, cond: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await cond())) {
    if (performance.now() > deadline) throw new Error(`${what}: not within ${timeoutMs}ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe.skipIf(!HAVE && !underCi)('HaproxyProvider against a real HAProxy', () => {
  it('inspect: admin socket, backend and both servers known, no warnings', async () => {
    const h = await haproxy();
    const r = await provider(h).inspect(signal);
    expect(r).toEqual({ ok: true, warnings: [] });
  });

  it('inspect: a socket at level operator is refused, naming the socket and the level it needs', async () => {
    const h = await haproxy({ operatorSocket: true });
    const r = await provider(h, { socket: h.operatorSocket }).inspect(signal);
    expect(r.ok).toBe(false);
    expect(r.reason).toContain(h.operatorSocket);
    expect(r.reason).toContain('level operator');
    expect(r.reason).toContain('"show cli level" answered "operator"');
    expect(r.reason).toContain('level admin');
  });

  it('inspect: an unknown backend, an unknown server and a missing socket each say which', async () => {
    const h = await haproxy();
    const noBackend = await new HaproxyProvider({ socket: h.adminSocket, backend: 'nope', servers: { blue: 'blue' } }).inspect(signal);
    expect(noBackend.ok).toBe(false);
    expect(noBackend.reason).toContain('"show servers state nope": HAProxy answered "Can\'t find backend."');
    expect(noBackend.reason).toContain('its backends are app');
    const noServer = await new HaproxyProvider({ socket: h.adminSocket, backend: 'app', servers: { blue: 'blue', green: 'teal' } }).inspect(signal);
    expect(noServer.ok).toBe(false);
    expect(noServer.reason).toContain('no server teal (slot green');
    expect(noServer.reason).toContain('lists blue, green');
    const noSocket = await new HaproxyProvider({ socket: join(dir, 'missing.sock'), backend: 'app', servers: { blue: 'blue' } }).inspect(signal);
    expect(noSocket.ok).toBe(false);
    expect(noSocket.reason).toContain(`haproxy socket ${join(dir, 'missing.sock')}, "show cli level": cannot talk to HAProxy (ENOENT)`);
  });

  it('observe: what HAProxy says of each slot', async () => {
    const h = await haproxy();
    const p = provider(h);
    await eventually('blue UP', async () => (await statusOf(p, 'blue')) === 'UP');
    expect(await p.observe(signal)).toEqual([
      { slot: 'blue', server: 'app/blue', status: 'UP', admin: 'ready', sessions: 0, queued: 0 },
      { slot: 'green', server: 'app/green', status: 'MAINT', admin: 'maint', sessions: 0, queued: 0 },
    ]);
    expect(await p.snapshot(signal)).toMatch(/^1\n# be_id be_name srv_id srv_name[^\n]*\n\d+ app 1 blue .*\n\d+ app 2 green /);
  });

  it('ready → waitUp waits for a passed check; drain → waitDrained waits for the request in flight, then new requests go to green', async () => {
    const h = await haproxy();
    const p = provider(h);
    await eventually('blue UP', async () => (await statusOf(p, 'blue')) === 'UP');
    let slowDone = false;
    const slow = get(h.port, '/?delay=1200').finally(() => (slowDone = true));
    await eventually('the slow request on blue', async () => (await p.observe(signal))[0]?.sessions === 1);

    await p.set('green', 'ready', signal);
    const up = await p.waitUp('green', 10_000, signal);
    expect(up.ok).toBe(true);
    expect(up.detail).toMatch(/^green UP after \d+ms \(check L4OK\)$/);

    await p.set('blue', 'drain', signal);
    expect(await statusOf(p, 'blue')).toBe('DRAIN');
    const drained = await p.waitDrained('blue', 10_000, signal);
    expect(drained.ok).toBe(true);
    expect(drained.detail).toMatch(/^blue drained after \d+ms \(DRAIN, no sessions, nothing queued\)$/);
    // it waited for the request in flight, which blue answered
    expect(slowDone).toBe(true);
    expect(await slow).toEqual({ status: 200, body: 'slot blue\n' });
    for (let i = 0; i < 5; i++) expect((await get(h.port)).body).toBe('slot green\n');

    // a drained server with nothing left: at once
    const again = await p.waitDrained('blue', 10_000, signal);
    expect(again.ok).toBe(true);
    expect(again.elapsedMs).toBeLessThan(1_000);
  });

  it('waitDrained is bounded, and shutdownSessions cuts what is left (retry-on conn-failure)', async () => {
    const h = await haproxy({ retryOn: 'conn-failure' });
    const p = provider(h);
    await eventually('blue UP', async () => (await statusOf(p, 'blue')) === 'UP');
    const slow = get(h.port, '/?delay=20000');
    await eventually('the slow request on blue', async () => (await p.observe(signal))[0]?.sessions === 1);
    await p.set('blue', 'drain', signal);
    const drained = await p.waitDrained('blue', 300, signal);
    expect(drained.ok).toBe(false);
    expect(drained.detail).toMatch(/^blue still has 1 sessions and 0 queued after \d+ms \(DRAIN\)$/);
    await p.shutdownSessions('blue', signal);
    expect((await slow).status).toBe(502);
    expect((await p.waitDrained('blue', 5_000, signal)).ok).toBe(true);
  });

  it('with retry-on all-retryable-errors, HAProxy re-sends a request shutdownSessions cut, to the drained server', async () => {
    const h = await haproxy();
    const p = provider(h);
    await eventually('blue UP', async () => (await statusOf(p, 'blue')) === 'UP');
    const slow = get(h.port, '/?delay=1500');
    await eventually('the slow request on blue', async () => (await p.observe(signal))[0]?.sessions === 1);
    await p.set('blue', 'drain', signal);
    await p.shutdownSessions('blue', signal);
    // the cut looks like an "empty-response" to HAProxy: it retries on the same server, which answers
    expect(await slow).toEqual({ status: 200, body: 'slot blue\n' });
    expect(blue.requests).toBeGreaterThanOrEqual(2);
    const row = (await h.command('show stat')).split('\n').find((l) => l.startsWith('app,blue,'));
    // wretr (16th column): retries
    expect(Number(row?.split(',')[15])).toBeGreaterThanOrEqual(1);
  });

  it('waitDrained on a server still in rotation fails at once', async () => {
    const h = await haproxy();
    const p = provider(h);
    await eventually('blue UP', async () => (await statusOf(p, 'blue')) === 'UP');
    const r = await p.waitDrained('blue', 5_000, signal);
    expect(r.ok).toBe(false);
    expect(r.detail).toContain('blue is in rotation (UP)');
  });

  it('an agent-check answering "ready" undoes a plain drain, but not one made with disable agent', async () => {
    const agent = await startAgent('ready');
    const h = await haproxy({ agentPort: agent.port, disabled: [] });
    const p = provider(h);
    await eventually('both UP', async () => (await p.observe(signal)).every((v) => v.status === 'UP'));
    const r = await p.inspect(signal);
    expect(r.ok).toBe(true);
    expect(r.warnings).toHaveLength(2);
    expect(r.warnings[0]).toContain('app/blue has an agent-check: safe-restart runs `disable agent app/blue` before a drain');

    // the control: a drain behind the agent's back is undone within an agent interval
    expect(await h.command('set server app/green state drain')).toBe('\n');
    await eventually('the agent undoing the drain of green', async () => (await statusOf(p, 'green')) === 'UP', 5_000);

    await p.set('blue', 'drain', signal);
    const asked = agent.asked;
    // green's agent keeps being asked (every 100ms): 20 more answers, and blue stays drained through all of them
    await eventually('20 more agent checks', async () => {
      expect(await statusOf(p, 'blue')).toBe('DRAIN');
      return agent.asked >= asked + 20;
    });
    const state = parseServersState(await p.snapshot(signal)).find((row) => row.srv_name === 'blue');
    // srv_agent_state: CONFIGURED|AGENT, no longer ENABLED (0x04)
    expect(Number(state?.srv_agent_state) & 0x04).toBe(0);

    await p.set('blue', 'ready', signal);
    const again = parseServersState(await p.snapshot(signal)).find((row) => row.srv_name === 'blue');
    expect(Number(again?.srv_agent_state) & 0x04).toBe(0x04);
    expect((await p.waitUp('blue', 5_000, signal)).ok).toBe(true);
  });

  it('the state file is written after every change, and a reload keeps the drained server drained', async () => {
    const h = await haproxy();
    const p = provider(h);
    await eventually('blue UP', async () => (await statusOf(p, 'blue')) === 'UP');
    await p.set('green', 'ready', signal);
    expect((await p.waitUp('green', 10_000, signal)).ok).toBe(true);
    await p.set('blue', 'drain', signal);
    const saved = parseServersState(readFileSync(h.stateFile as string, 'utf8'));
    // srv_admin_state 0x08: forced drain
    expect(saved.find((r) => r.srv_name === 'blue')?.srv_admin_state).toBe('8');

    const { oldWorkers, newWorkers } = await h.reload();
    expect(newWorkers).not.toEqual(oldWorkers);
    await eventually('green UP after the reload', async () => (await statusOf(p, 'green')).startsWith('UP'));
    expect(await statusOf(p, 'blue')).toBe('DRAIN');
    for (let i = 0; i < 5; i++) expect((await get(h.port)).body).toBe('slot green\n');
  });

  it('the control: without the state file a reload resurrects the drained server', async () => {
    const h = await haproxy({ stateFile: false, disabled: [] });
    const p = provider(h, { stateFile: null });
    expect((await p.inspect(signal)).warnings[0]).toContain('no state_file');
    await eventually('both UP', async () => (await p.observe(signal)).every((v) => v.status === 'UP'));
    await p.set('blue', 'drain', signal);
    expect(await statusOf(p, 'blue')).toBe('DRAIN');
    await h.reload();
    expect(await statusOf(p, 'blue')).not.toBe('DRAIN');
  });

  it("HAProxy's refusals name the socket, the command and the answer", async () => {
    const h = await haproxy({ operatorSocket: true });
    const op = provider(h, { socket: h.operatorSocket, stateFile: null });
    const refused = await op.set('blue', 'drain', signal).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(TrafficError);
    expect((refused as TrafficError).code).toBe('SR_TRAFFIC_REFUSED');
    expect((refused as TrafficError).message).toBe(`haproxy socket ${h.operatorSocket}, "set server app/blue state drain": HAProxy answered "Permission denied"`);

    const wrong = new HaproxyProvider({ socket: h.adminSocket, backend: 'app', servers: { blue: 'teal' } });
    const missing = await wrong.set('blue', 'drain', signal).catch((e: unknown) => e);
    expect((missing as TrafficError).message).toBe(`haproxy socket ${h.adminSocket}, "set server app/teal state drain": HAProxy answered "No such server."`);
    await expect(provider(h).set('red', 'ready', signal)).rejects.toMatchObject({ code: 'SR_TRAFFIC_UNKNOWN_SLOT' });
  });

  it('waitUp is bounded and says what HAProxy sees', async () => {
    const h = await haproxy();
    const p = provider(h);
    await green.stop();
    await p.set('green', 'ready', signal);
    const r = await p.waitUp('green', 600, signal);
    expect(r.ok).toBe(false);
    expect(r.detail).toMatch(/^green not UP after \d+ms: HAProxy says DOWN, check L4CON \(Connection refused\)$/);
  });
});
