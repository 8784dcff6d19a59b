// Real load balancers for tests: HAProxy (master-worker, admin and master sockets, a server-state-file) and
// nginx (own prefix, pidfile, error log), each in the test's temporary directory on a free loopback port, in
// its own process group, stopped by that group (never by name) — stopAllLbs() in afterEach catches every
// one a failing test left. Plus tiny backends ("slot <name>"), an HAProxy agent and a one-shot GET (load: load.ts).
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { connect as netConnect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { descendants, isAlive, killGroup, readPidfile, waitForGroupGone } from '../../src/process/group.js';
import { readFileTail } from '../../src/process/tail.js';
import { haproxyCommand } from '../../src/traffic/haproxy.js';
import { freePort } from './servers.js';

export { freePort };

interface Stoppable {
  stop(): Promise<void>;
}

const running = new Set<Stoppable>();

/** Stops every backend, agent and load balancer started here and not stopped yet (afterEach). */
export async function stopAllLbs(): Promise<void> {
  const all = [...running];
  running.clear();
  await Promise.allSettled(all.map((s) => s.stop()));
}

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | null> | T | null, explain: () => string = () => ''): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  let delay = 5;
  for (;;) {
    const value = await probe();
    if (value !== null) return value;
    if (performance.now() > deadline) throw new Error(`${what}: not after ${timeoutMs}ms${explain() ? `\n${explain()}` : ''}`);
    await sleep(delay);
    delay = Math.min(delay * 2, 50);
  }
}

/** A TCP connection to 127.0.0.1:port is accepted. */
async function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = netConnect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

async function stopGroup(pgid: number): Promise<void> {
  if (!isAlive(pgid) && (await waitForGroupGone(pgid, 0))) return;
  try {
    killGroup(pgid, 'SIGTERM');
  } catch {
    return;
  }
  if (await waitForGroupGone(pgid, 5_000)) return;
  try {
    killGroup(pgid, 'SIGKILL');
  } catch {
    return;
  }
  await waitForGroupGone(pgid, 5_000);
}


export interface Backend {
  name: string;
  port: number;
  /** requests answered (or being answered) so far */
  readonly requests: number;
  /** requests in flight now */
  readonly inFlight: number;
  stop(): Promise<void>;
}

/** node:http on 127.0.0.1:port answering "slot <name>"; `?delay=MS` answers after MS. */
export async function startBackend(name: string, port?: number): Promise<Backend> {
  let requests = 0;
  let inFlight = 0;
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    requests++;
    inFlight++;
    res.on('close', () => inFlight--);
    const delay = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('delay') ?? 0);
    const answer = (): void => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`slot ${name}\n`);
    };
    if (delay > 0) setTimeout(answer, delay);
    else answer();
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port ?? 0, '127.0.0.1', () => resolve());
  });
  const actual = (server.address() as { port: number }).port;
  const handle: Backend = {
    name,
    port: actual,
    get requests() {
      return requests;
    },
    get inFlight() {
      return inFlight;
    },
    async stop() {
      running.delete(handle);
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  running.add(handle);
  return handle;
}

export interface Agent {
  port: number;
  /** agent checks answered so far */
  readonly asked: number;
  /** what the agent answers from now on ("ready", "drain", "maint", "up 50%" …) */
  answer: string;
  stop(): Promise<void>;
}

/** An HAProxy agent-check server: answers each connection with one line and closes. */
export async function startAgent(answer = 'ready'): Promise<Agent> {
  let asked = 0;
  const sockets = new Set<Socket>();
  const state = { answer };
  const server: Server = createServer((s) => {
    asked++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    // HAProxy resets the connection once it has read the line
    s.on('error', () => {});
    s.end(`${state.answer}\n`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const handle: Agent = {
    port: (server.address() as { port: number }).port,
    get asked() {
      return asked;
    },
    get answer() {
      return state.answer;
    },
    set answer(value: string) {
      state.answer = value;
    },
    async stop() {
      running.delete(handle);
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  running.add(handle);
  return handle;
}


export interface Answer {
  status: number;
  body: string;
}

/** One GET on a fresh connection (no keep-alive); rejects on a network error or after timeoutMs. */
export function get(port: number, path = '/', timeoutMs = 10_000): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET :${port}${path} timed out after ${timeoutMs}ms`)));
    req.on('error', reject);
  });
}

export interface StartHaproxyOptions {
  dir: string;
  /** the frontend's port on 127.0.0.1 */
  port: number;
  /** server name → backend port on 127.0.0.1 */
  servers: Record<string, number>;
  /** backend name (default "app") */
  backend?: string;
  /** servers that start `disabled` (MAINT) */
  disabled?: string[];
  /** every server gets `agent-check agent-port PORT agent-inter 100ms` */
  agentPort?: number;
  /** server-state-file DIR/haproxy.state with load-server-state-from-file global */
  stateFile?: boolean;
  /** also `stats socket DIR/operator.sock level operator` */
  operatorSocket?: boolean;
  /** `retry-on` (default all-retryable-errors: HAProxy then re-sends a request whose server connection it lost, even one it cut itself) */
  retryOn?: string;
}

export interface HaproxyHandle {
  /** the master's pid (and process group) */
  pid: number;
  dir: string;
  port: number;
  backend: string;
  configFile: string;
  adminSocket: string;
  masterSocket: string;
  operatorSocket: string | undefined;
  stateFile: string | undefined;
  /** the master's workers now */
  workers(): number[];
  /** a command on the admin socket */
  command(cmd: string): Promise<string>;
  /** `reload` on the master socket; resolves once a new worker answers and the old ones have exited */
  reload(): Promise<{ oldWorkers: number[]; newWorkers: number[] }>;
  log(): string;
  stop(): Promise<void>;
}

export function haproxyConfig(o: StartHaproxyOptions): string {
  const backend = o.backend ?? 'app';
  const agent = o.agentPort ? ` agent-check agent-port ${o.agentPort} agent-inter 100ms` : '';
  const servers = Object.entries(o.servers).map(([name, port]) => `  server ${name} 127.0.0.1:${port}${agent}${o.disabled?.includes(name) ? ' disabled' : ''}`);
  return [
    'global',
    `  stats socket ${join(o.dir, 'admin.sock')} mode 600 level admin`,
    ...(o.operatorSocket ? [`  stats socket ${join(o.dir, 'operator.sock')} mode 600 level operator`] : []),
    ...(o.stateFile ? [`  server-state-file ${join(o.dir, 'haproxy.state')}`] : []),
    '  nbthread 1',
    'defaults',
    '  mode http',
    '  timeout connect 1s',
    '  timeout client 30s',
    '  timeout server 30s',
    ...(o.stateFile ? ['  load-server-state-from-file global'] : []),
    '  option redispatch',
    `  retry-on ${o.retryOn ?? 'all-retryable-errors'}`,
    '  retries 3',
    '  default-server check inter 100ms fall 2 rise 1',
    'frontend fe',
    `  bind 127.0.0.1:${o.port}`,
    `  default_backend ${backend}`,
    `backend ${backend}`,
    ...servers,
    '',
  ].join('\n');
}

/** haproxy -W -S DIR/master.sock -f DIR/haproxy.cfg in the foreground, in its own process group. */
export async function startHaproxy(o: StartHaproxyOptions): Promise<HaproxyHandle> {
  const configFile = join(o.dir, 'haproxy.cfg');
  const adminSocket = join(o.dir, 'admin.sock');
  const masterSocket = join(o.dir, 'master.sock');
  const logFile = join(o.dir, 'haproxy.log');
  writeFileSync(configFile, haproxyConfig(o));
  const out = openSync(logFile, 'a');
  const child = spawn('haproxy', ['-W', '-S', masterSocket, '-f', configFile], { detached: true, stdio: ['ignore', out, out] });
  closeSync(out);
  child.on('error', () => {});
  const pid = child.pid;
  if (!pid) throw new Error('haproxy did not start (is it installed?)');
  const log = (): string => readFileTail(logFile);
  const workers = (): number[] => descendants(pid);
  const command = (cmd: string): Promise<string> => haproxyCommand(adminSocket, cmd);
  const answering = async (): Promise<true | null> => {
    try {
      return /^Name: HAProxy/m.test(await command('show info')) ? true : null;
    } catch {
      return null;
    }
  };
  const handle: HaproxyHandle = {
    pid,
    dir: o.dir,
    port: o.port,
    backend: o.backend ?? 'app',
    configFile,
    adminSocket,
    masterSocket,
    operatorSocket: o.operatorSocket ? join(o.dir, 'operator.sock') : undefined,
    stateFile: o.stateFile ? join(o.dir, 'haproxy.state') : undefined,
    workers,
    command,
    log,
    async reload() {
      const oldWorkers = workers();
      // the master re-executes itself: the connection may end without an answer
      await haproxyCommand(masterSocket, 'reload').catch(() => '');
      const newWorkers = await until('a new haproxy worker after reload', 15_000, () => {
        const fresh = workers().filter((p) => !oldWorkers.includes(p));
        return fresh.length > 0 ? fresh : null;
      }, log);
      await until('the old haproxy workers to exit after reload', 15_000, () => (oldWorkers.some((p) => isAlive(p)) ? null : true), log);
      await until('the admin socket after reload', 10_000, answering, log);
      return { oldWorkers, newWorkers };
    },
    async stop() {
      running.delete(handle);
      await stopGroup(pid);
    },
  };
  running.add(handle);
  try {
    await until('haproxy answering on its admin socket', 10_000, async () => {
      if (child.exitCode !== null) throw new Error(`haproxy exited ${child.exitCode}:\n${log()}`);
      return answering();
    }, log);
    await until(`haproxy accepting on 127.0.0.1:${o.port}`, 10_000, async () => ((await accepts(o.port)) ? true : null), log);
  } catch (error) {
    await handle.stop();
    throw error;
  }
  return handle;
}


export interface StartNginxOptions {
  dir: string;
  /** the listening port on 127.0.0.1 */
  port: number;
  /** the file holding `upstream NAME { … }`, included in http{}; written from `servers` when it does not exist */
  upstreamFile: string;
  /** upstream name (default "app") */
  upstream?: string;
  /** initial upstream: server name → backend port (used only when upstreamFile does not exist) */
  servers?: Record<string, number>;
  /** default 10s */
  workerShutdownTimeout?: string;
  /** default 1 */
  workerProcesses?: number;
  /** further `listen` ports in the server block (a port someone else holds makes a reload fail to bind) */
  extraListen?: number[];
}

export interface NginxHandle {
  /** the master's pid (and process group) */
  pid: number;
  dir: string;
  port: number;
  configFile: string;
  prefix: string;
  pidfile: string;
  errorLog: string;
  upstreamFile: string;
  /** `nginx -c CONF -p PREFIX -t` as an argv */
  testCommand: string[];
  /** `nginx -c CONF -p PREFIX -s reload` as an argv */
  reloadCommand: string[];
  /** the master's current workers (not those shutting down) */
  workers(): number[];
  /** rewrites nginx.conf (not the upstream file) with other options */
  writeConfig(change: Pick<StartNginxOptions, 'extraListen' | 'workerShutdownTimeout'>): void;
  /** runs reloadCommand and waits until a new worker generation replaced the current one */
  reload(): Promise<{ oldWorkers: number[]; newWorkers: number[] }>;
  log(): string;
  stop(): Promise<void>;
}

export function nginxConfig(o: StartNginxOptions): string {
  const t = (name: string): string => `${name}_temp_path ${join(o.dir, 'tmp', name)};`;
  const listen = [o.port, ...(o.extraListen ?? [])].map((p) => `listen 127.0.0.1:${p};`).join(' ');
  return [
    `worker_processes ${o.workerProcesses ?? 1};`,
    `pid ${join(o.dir, 'nginx.pid')};`,
    `error_log ${join(o.dir, 'error.log')} info;`,
    `worker_shutdown_timeout ${o.workerShutdownTimeout ?? '10s'};`,
    'events { worker_connections 256; }',
    'http {',
    '  access_log off;',
    `  ${t('client_body')} ${t('proxy')} ${t('fastcgi')} ${t('uwsgi')} ${t('scgi')}`,
    `  include ${o.upstreamFile};`,
    `  server { ${listen} location / { proxy_pass http://${o.upstream ?? 'app'}; } }`,
    '}',
    '',
  ].join('\n');
}

function shuttingDown(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('shutting down');
  } catch {
    return true;
  }
}

/** nginx -c DIR/nginx.conf -p DIR/ -g "daemon off;": the master is our child, in its own process group. */
export async function startNginx(o: StartNginxOptions): Promise<NginxHandle> {
  const configFile = join(o.dir, 'nginx.conf');
  const prefix = `${o.dir}/`;
  const pidfile = join(o.dir, 'nginx.pid');
  const errorLog = join(o.dir, 'error.log');
  const logFile = join(o.dir, 'nginx.out');
  let options = { ...o };
  if (!existsSync(o.upstreamFile)) {
    const lines = Object.values(o.servers ?? {}).map((p) => `    server 127.0.0.1:${p};`);
    writeFileSync(o.upstreamFile, `upstream ${o.upstream ?? 'app'} {\n${lines.join('\n')}\n}\n`);
  }
  writeFileSync(configFile, nginxConfig(options));
  // nginx creates the last level of a temp path only
  mkdirSync(join(o.dir, 'tmp'), { recursive: true });
  const base = ['nginx', '-c', configFile, '-p', prefix];
  const out = openSync(logFile, 'a');
  const child = spawn('nginx', ['-c', configFile, '-p', prefix, '-g', 'daemon off;'], { detached: true, stdio: ['ignore', out, out] });
  closeSync(out);
  child.on('error', () => {});
  const pid = child.pid;
  if (!pid) throw new Error('nginx did not start (is it installed?)');
  const log = (): string => `${readFileTail(logFile)}${readFileTail(errorLog)}`;
  const workers = (): number[] => descendants(pid).filter((p) => !shuttingDown(p));
  const handle: NginxHandle = {
    pid,
    dir: o.dir,
    port: o.port,
    configFile,
    prefix,
    pidfile,
    errorLog,
    upstreamFile: o.upstreamFile,
    testCommand: [...base, '-t'],
    reloadCommand: [...base, '-s', 'reload'],
    workers,
    log,
    writeConfig(change) {
      options = { ...options, ...change };
      writeFileSync(configFile, nginxConfig(options));
    },
    async reload() {
      const oldWorkers = workers();
      await new Promise<void>((resolve, reject) => {
        const r = spawn(handle.reloadCommand[0] as string, handle.reloadCommand.slice(1), { stdio: 'ignore' });
        r.once('error', reject);
        r.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`nginx -s reload exited ${code}`))));
      });
      const newWorkers = await until('a new nginx worker generation', 15_000, () => {
        const now = workers();
        return now.length > 0 && now.every((p) => !oldWorkers.includes(p)) ? now : null;
      }, log);
      return { oldWorkers, newWorkers };
    },
    async stop() {
      running.delete(handle);
      await stopGroup(pid);
    },
  };
  running.add(handle);
  try {
    await until('nginx writing its pidfile and starting a worker', 10_000, () => {
      if (child.exitCode !== null) throw new Error(`nginx exited ${child.exitCode}:\n${log()}`);
      return readPidfile(pidfile) === pid && workers().length > 0 ? true : null;
    }, log);
    await until(`nginx accepting on 127.0.0.1:${o.port}`, 10_000, async () => ((await accepts(o.port)) ? true : null), log);
  } catch (error) {
    await handle.stop();
    throw error;
  }
  return handle;
}
