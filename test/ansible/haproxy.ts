// One real HAProxy (Debian's 2.6) in front of the Ansible test fleet: its frontend on 127.0.0.1, a backend `web`
// whose servers are the hosts' services on their own addresses (127.0.0.11:PORT …), an admin stats socket and a
// server-state-file in the test's directory. test/support/lb.ts starts HAProxy for backends on 127.0.0.1 only;
// this one names each server's address. Master-worker in its own process group, stopped by that group.
import { spawn } from 'node:child_process';
import { closeSync, openSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isAlive, killGroup, waitForGroupGone } from '../../src/process/group.js';
import { readFileTail } from '../../src/process/tail.js';
import { haproxyCommand, parseStat } from '../../src/traffic/haproxy.js';

export interface FleetLb {
  pid: number;
  port: number;
  backend: string;
  adminSocket: string;
  stateFile: string;
  /** backend server → HAProxy's status word (UP, DRAIN, DOWN, MAINT …) */
  status(): Promise<Record<string, string>>;
  /** backend server → its current sessions (scur) */
  sessions(): Promise<Record<string, number>>;
  log(): string;
  stop(): Promise<void>;
}

// Frontend ports come from 10000–19999: below the kernel's ephemeral range (32768–60999, where the other
// suites' port-0 servers land) and below the 20000–49999 the fleet test picks its service ports from.
async function freeFrontendPort(): Promise<number> {
  for (;;) {
    const port = 10_000 + Math.floor(Math.random() * 10_000);
    const taken = await new Promise<boolean>((res) => {
      const s = connect({ host: '127.0.0.1', port });
      s.once('connect', () => (s.destroy(), res(true)));
      s.once('error', () => res(false));
    });
    if (!taken) return port;
  }
}

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>, explain: () => string): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`${what}: not after ${timeoutMs}ms\n${explain()}`);
    await sleep(50);
  }
}

/** HAProxy with servers `name → ip:port`, health-checked on GET /healthz every 100 ms; resolves once all are UP. */
export async function startFleetLb(dir: string, servers: Record<string, string>): Promise<FleetLb> {
  const port = await freeFrontendPort();
  const backend = 'web';
  const adminSocket = join(dir, 'admin.sock');
  const stateFile = join(dir, 'haproxy.state');
  const configFile = join(dir, 'haproxy.cfg');
  const logFile = join(dir, 'haproxy.log');
  writeFileSync(configFile, [
    'global',
    `  stats socket ${adminSocket} mode 600 level admin`,
    `  server-state-file ${stateFile}`,
    '  nbthread 1',
    'defaults',
    '  mode http',
    '  timeout connect 1s',
    '  timeout client 30s',
    '  timeout server 30s',
    '  load-server-state-from-file global',
    // strict on purpose: no retries, no redispatch. With `retries 3` (+ `option redispatch`) HAProxy holds and re-sends
    // every request a restarting server refuses, and a rollout without any drain failed none either (measured):
    // here a request sent to a server that is not serving fails, so the test fails when the drain is missing
    '  retries 0',
    '  default-server check inter 100ms fall 2 rise 1',
    'frontend fe',
    `  bind 127.0.0.1:${port}`,
    `  default_backend ${backend}`,
    `backend ${backend}`,
    '  option httpchk GET /healthz',
    '  http-check expect status 200',
    ...Object.entries(servers).map(([name, address]) => `  server ${name} ${address}`),
    '',
  ].join('\n'));
  const out = openSync(logFile, 'a');
  const child = spawn('haproxy', ['-W', '-S', join(dir, 'master.sock'), '-f', configFile], { detached: true, stdio: ['ignore', out, out] });
  closeSync(out);
  child.on('error', () => {});
  if (!child.pid) throw new Error('haproxy did not start (is it installed?)');
  const pid = child.pid;
  const log = (): string => readFileTail(logFile);
  const rows = async () => parseStat(await haproxyCommand(adminSocket, 'show stat')).filter((r) => r.pxname === backend && r.svname !== 'BACKEND');
  const status = async (): Promise<Record<string, string>> => Object.fromEntries((await rows()).map((r) => [r.svname as string, r.status as string]));
  const sessions = async (): Promise<Record<string, number>> => Object.fromEntries((await rows()).map((r) => [r.svname as string, Number(r.scur)]));
  const lb: FleetLb = {
    pid, port, backend, adminSocket, stateFile, status, sessions, log,
    async stop() {
      if (!isAlive(pid) && (await waitForGroupGone(pid, 0))) return;
      try { killGroup(pid, 'SIGTERM'); } catch { return; }
      if (await waitForGroupGone(pid, 5_000)) return;
      try { killGroup(pid, 'SIGKILL'); } catch { return; }
      await waitForGroupGone(pid, 5_000);
    },
  };
  try {
    await until('every fleet server UP in haproxy', 15_000, async () => {
      if (child.exitCode !== null) throw new Error(`haproxy exited ${child.exitCode}:\n${log()}`);
      const s = await status().catch(() => ({} as Record<string, string>));
      return Object.keys(servers).every((name) => s[name] === 'UP') ? true : undefined;
    }, log);
  } catch (error) {
    await lb.stop();
    throw error;
  }
  return lb;
}
