// Real database servers for tests: each on a free loopback port, in its own temporary directory,
// started as the right user, stopped by the PID we hold (never by name), cleaned up even when a test fails.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, openSync, closeSync, readdirSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { chown, mkdtemp, rm, readFile } from 'node:fs/promises';
import { createServer, connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import mysql from 'mysql2/promise';

export type ServerKind = 'postgres' | 'mariadb' | 'redis';

export interface ServerHandle {
  kind: ServerKind;
  host: string;
  port: number;
  /** Connection URL with the credentials the server was set up with. */
  url: string;
  /** Password set on the server ('' when none). */
  password: string;
  /** The server's temporary directory (data, socket, log). */
  dir: string;
  /** PID of the running server process, undefined while halted. */
  readonly pid: number | undefined;
  /** Starts (or restarts after halt) on the same port and data; resolves when the server answers. */
  start(): Promise<void>;
  /** Stops the process (graceful, then SIGKILL) but keeps the data and the port number for start(). */
  halt(): Promise<void>;
  /** Halts and removes the temporary directory. Idempotent. */
  stop(): Promise<void>;
  /** The server's log so far (for failure messages). */
  log(): Promise<string>;
}

export interface UrlOverrides {
  user?: string;
  password?: string;
  database?: string;
  /** Query string parameters, e.g. { sslmode: 'require' }. */
  params?: Record<string, string>;
}

export interface PostgresHandle extends ServerHandle {
  kind: 'postgres';
  user: string;
  database: string;
  /** Builds a URL to this server with some parts replaced. */
  urlFor(overrides?: UrlOverrides): string;
  /** When started with ssl: the self-signed certificate (PEM file) to use as sslrootcert. */
  caFile?: string;
}

export interface MariadbHandle extends ServerHandle {
  kind: 'mariadb';
  user: string;
  database: string;
  urlFor(overrides?: UrlOverrides): string;
}

export interface RedisHandle extends ServerHandle {
  kind: 'redis';
  urlFor(overrides?: Omit<UrlOverrides, 'user'> & { db?: number }): string;
}

export interface StartPostgresOptions {
  /** Password of the `postgres` superuser; TCP logins then need it (scram-sha-256). Default: none (trust). */
  password?: string;
  /**
   * 'standby': the server stays in recovery with hot_standby=off and answers every login with
   * SQLSTATE 57P03 ("the database system is not accepting connections") until stopped.
   */
  startupDelay?: 'standby';
  /** Enable TLS with a fresh self-signed certificate for CN=localhost, SAN 127.0.0.1 (see caFile). */
  ssl?: boolean;
  /** Use this port instead of a free one. */
  port?: number;
  /** Prepare (initdb) but do not start; call handle.start() later. */
  defer?: boolean;
}

export interface StartMariadbOptions {
  /** Password of the `app` user (created with ALL PRIVILEGES). Default: a random one. */
  password?: string;
  port?: number;
  defer?: boolean;
}

export interface StartRedisOptions {
  /** requirepass: the default user needs AUTH with this password. */
  password?: string;
  /**
   * Start the server loading a 2000-key RDB with key-load-delay, so it answers every command with
   * `-LOADING Redis is loading the dataset in memory` for ~100 s.
   */
  loading?: boolean;
  port?: number;
  defer?: boolean;
}

interface BinaryInfo {
  package: string;
  binaries: Record<string, string | undefined>;
}

const PACKAGES: Record<ServerKind, string> = { postgres: 'postgresql', mariadb: 'mariadb-server', redis: 'redis-server' };

function which(name: string, extraDirs: string[] = []): string | undefined {
  const dirs = [...extraDirs, ...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/bin', '/sbin', '/bin'];
  for (const d of dirs) {
    if (d && existsSync(join(d, name))) return join(d, name);
  }
  return undefined;
}

function postgresBinDirs(): string[] {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .filter((v) => /^\d+$/.test(v))
    .sort((a, b) => Number(b) - Number(a))
    .map((v) => join(root, v, 'bin'));
}

function findBinaries(kind: ServerKind): BinaryInfo {
  switch (kind) {
    case 'postgres': {
      const dirs = postgresBinDirs();
      return { package: PACKAGES.postgres, binaries: { initdb: which('initdb', dirs), postgres: which('postgres', dirs) } };
    }
    case 'mariadb':
      return {
        package: PACKAGES.mariadb,
        binaries: { 'mariadb-install-db': which('mariadb-install-db'), mariadbd: which('mariadbd') },
      };
    case 'redis':
      return { package: PACKAGES.redis, binaries: { 'redis-server': which('redis-server') } };
  }
}

export type Availability = { ok: true; message: '' } | { ok: false; message: string };

/**
 * Whether this machine can run `kind`. Missing binaries: { ok: false, message naming the Debian package },
 * so the caller can skip — except under CI=true, where a missing binary throws (the run must fail).
 */
export function serverAvailability(kind: ServerKind): Availability {
  const info = findBinaries(kind);
  const missing = Object.entries(info.binaries)
    .filter(([, path]) => path === undefined)
    .map(([name]) => name);
  if (missing.length === 0) return { ok: true, message: '' };
  const message = `${kind} tests skipped: ${missing.join(', ')} not found – install the Debian package "${info.package}" (apt-get install ${info.package})`;
  if (process.env.CI === 'true') throw new Error(`${message.replace(' tests skipped', ' binaries missing under CI=true')}`);
  return { ok: false, message };
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function randomPassword(): string {
  return `pw-${Math.random().toString(36).slice(2, 10)}-${Date.now().toString(36)}`;
}

function ids(user: string): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${user}:`));
  if (!line) throw new Error(`running as root but there is no "${user}" system user to run the server as`);
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

const DIR_PREFIXES = ['pg', 'maria', 'redis'];
let swept = false;

// A test process killed with SIGKILL cannot remove its directories (its servers die with it through the
// parent-death signal); the next run removes directories whose recorded test process is gone.
function sweepStaleDirs(): void {
  if (swept) return;
  swept = true;
  for (const name of readdirSync(tmpdir())) {
    if (!DIR_PREFIXES.some((p) => name.startsWith(`sr-${p}-`))) continue;
    const dir = join(tmpdir(), name);
    try {
      const pid = Number(readFileSync(join(dir, 'owner.pid'), 'utf8'));
      if (Number.isInteger(pid) && pid > 0 && !existsSync(`/proc/${pid}`)) rmSync(dir, { recursive: true, force: true });
    } catch {
      // no owner file (being created right now, or not ours): leave it
    }
  }
}

async function makeDir(prefix: string, owner?: { uid: number; gid: number }): Promise<string> {
  sweepStaleDirs();
  const dir = await mkdtemp(join(tmpdir(), `sr-${prefix}-`));
  writeFileSync(join(dir, 'owner.pid'), String(process.pid));
  if (owner) await chown(dir, owner.uid, owner.gid);
  return dir;
}

// Every server process we started and still hold; the exit/signal handlers kill what is left.
const live = new Set<ChildProcess>();
let handlersInstalled = false;

function killAllSync(): void {
  for (const child of live) {
    // Each server leads its own process group (detached), so this reaches postgres' backends too.
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  live.clear();
}

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.once('exit', killAllSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      killAllSync();
      // Only re-raise when nobody else handles the signal; otherwise leave the decision to them.
      if (process.listenerCount(sig) === 1) {
        process.removeListener(sig, onSignal);
        process.kill(process.pid, sig);
      }
    };
    process.on(sig, onSignal);
  }
}

const SETPRIV = which('setpriv');

interface Spawned {
  child: ChildProcess;
  exited: Promise<void>;
}

/**
 * Spawns a server in its own process group, output to logFile. With setpriv (util-linux) the server also
 * gets a parent-death signal, so even a SIGKILLed test worker leaves nothing running. (The signal follows
 * the spawning thread: fine for vitest's `forks` pool; under `threads` a server dies with its worker thread.)
 */
function spawnServer(
  argv: string[],
  opts: { logFile: string; owner?: { uid: number; gid: number }; deathSignal: 'INT' | 'TERM' },
): Spawned {
  installHandlers();
  const fd = openSync(opts.logFile, 'a');
  const [cmd, ...args] = SETPRIV ? [SETPRIV, '--pdeathsig', opts.deathSignal, '--', ...argv] : argv;
  const child = spawn(cmd!, args, {
    detached: true,
    stdio: ['ignore', fd, fd],
    ...(opts.owner ? { uid: opts.owner.uid, gid: opts.owner.gid } : {}),
  });
  closeSync(fd);
  live.add(child);
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      live.delete(child);
      resolve();
    });
    child.once('error', () => {
      live.delete(child);
      resolve();
    });
  });
  return { child, exited };
}

function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null && child.pid !== undefined;
}

async function stopProcess(s: Spawned, signal: NodeJS.Signals, graceMs: number): Promise<void> {
  const { child } = s;
  if (!isRunning(child)) return;
  try {
    process.kill(child.pid!, signal);
  } catch {
    return;
  }
  const grace = new AbortController();
  const timer = sleep(graceMs, undefined, { signal: grace.signal }).then(
    () => 'timeout' as const,
    () => 'cancelled' as const,
  );
  const first = await Promise.race([s.exited.then(() => 'exited' as const), timer]);
  grace.abort();
  if (first === 'timeout' && isRunning(child)) {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // gone between the check and the kill
    }
    await s.exited;
  }
}

/** Runs a setup command (initdb, mariadb-install-db, openssl) to completion, failing with its output. */
async function run(argv: string[], owner?: { uid: number; gid: number }): Promise<void> {
  const [cmd, ...args] = argv;
  await new Promise<void>((resolve, reject) => {
    execFile(cmd!, args, { timeout: 120_000, maxBuffer: 16 * 1024 * 1024, ...(owner ? { uid: owner.uid, gid: owner.gid } : {}) }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${argv.join(' ')} failed (${err.message}):\n${stdout}\n${stderr}`));
      else resolve();
    });
  });
}

async function tail(file: string, chars = 3000): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).slice(-chars);
  } catch {
    return '(no log)';
  }
}

/**
 * Polls `probe` until it returns true, failing early when the server exits and after deadlineMs.
 */
async function waitUntil(
  what: string,
  s: Spawned,
  logFile: string,
  probe: () => Promise<boolean>,
  deadlineMs = 60_000,
): Promise<void> {
  const end = Date.now() + deadlineMs;
  let last = '';
  while (Date.now() < end) {
    if (!isRunning(s.child)) throw new Error(`${what} exited while starting:\n${await tail(logFile)}`);
    try {
      if (await probe()) return;
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(50);
  }
  await stopProcess(s, 'SIGKILL', 0);
  throw new Error(`${what} not ready after ${deadlineMs}ms (last: ${last}):\n${await tail(logFile)}`);
}

function makeHandleBase(
  kind: ServerKind,
  dir: string,
  logFile: string,
  launch: () => Promise<Spawned>,
  haltSignal: NodeJS.Signals,
  graceMs: number,
): Pick<ServerHandle, 'pid' | 'start' | 'halt' | 'stop' | 'log'> {
  let current: Spawned | undefined;
  let removed = false;
  return {
    get pid() {
      return current && isRunning(current.child) ? current.child.pid : undefined;
    },
    async start() {
      if (removed) throw new Error(`${kind} server in ${dir} was stopped and removed`);
      if (current && isRunning(current.child)) return;
      current = await launch();
    },
    async halt() {
      if (current) await stopProcess(current, haltSignal, graceMs);
    },
    async stop() {
      if (current) await stopProcess(current, haltSignal, graceMs);
      if (!removed) {
        removed = true;
        await rm(dir, { recursive: true, force: true, maxRetries: 3 });
      }
    },
    log: () => tail(logFile, 100_000),
  };
}

function buildUrl(
  scheme: string,
  host: string,
  port: number,
  user: string,
  password: string,
  path: string,
  params?: Record<string, string>,
): string {
  const u = new URL(`${scheme}://placeholder/`);
  u.hostname = host.includes(':') ? `[${host}]` : host;
  u.port = String(port);
  u.username = encodeURIComponent(user);
  u.password = encodeURIComponent(password);
  u.pathname = `/${path}`;
  for (const [k, v] of Object.entries(params ?? {})) u.searchParams.set(k, v);
  return u.toString();
}

async function makeSelfSignedCert(dir: string, owner?: { uid: number; gid: number }): Promise<{ cert: string; key: string }> {
  const cert = join(dir, 'server.crt');
  const key = join(dir, 'server.key');
  await run([
    which('openssl') ?? 'openssl',
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
    '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1',
    '-keyout', key, '-out', cert,
  ]);
  chmodSync(key, 0o600);
  if (owner) {
    await chown(cert, owner.uid, owner.gid);
    await chown(key, owner.uid, owner.gid);
  }
  return { cert, key };
}

export async function startPostgres(opts: StartPostgresOptions = {}): Promise<PostgresHandle> {
  const avail = serverAvailability('postgres');
  if (!avail.ok) throw new Error(avail.message);
  const { binaries } = findBinaries('postgres');
  const owner = ids('postgres');
  const dir = await makeDir('pg', owner);
  const data = join(dir, 'data');
  const logFile = join(dir, 'server.log');
  const host = '127.0.0.1';
  const port = opts.port ?? (await freePort());
  const user = 'postgres';
  const database = 'postgres';
  const password = opts.password ?? '';

  const initArgs = [binaries.initdb!, '-D', data, '-U', user, '--no-sync', '--no-instructions', '-E', 'UTF8', '--auth-local=trust'];
  if (password) {
    const pwfile = join(dir, 'pwfile');
    writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
    if (owner) await chown(pwfile, owner.uid, owner.gid);
    initArgs.push('--auth-host=scram-sha-256', `--pwfile=${pwfile}`);
  } else {
    initArgs.push('--auth-host=trust');
  }
  try {
    await run(initArgs, owner);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  rmSync(join(dir, 'pwfile'), { force: true });

  const serverArgs = [
    binaries.postgres!, '-D', data, '-p', String(port), '-k', dir,
    '-c', `listen_addresses=${host}`, '-c', 'fsync=off', '-c', 'max_connections=30', '-c', 'shared_buffers=16MB',
  ];
  let caFile: string | undefined;
  if (opts.ssl) {
    const { cert, key } = await makeSelfSignedCert(dir, owner);
    caFile = cert;
    serverArgs.push('-c', 'ssl=on', '-c', `ssl_cert_file=${cert}`, '-c', `ssl_key_file=${key}`);
  }
  const standby = opts.startupDelay === 'standby';
  if (standby) {
    writeFileSync(join(data, 'standby.signal'), '');
    if (owner) await chown(join(data, 'standby.signal'), owner.uid, owner.gid);
    serverArgs.push('-c', 'hot_standby=off');
  }

  const launch = async (): Promise<Spawned> => {
    const s = spawnServer(serverArgs, { logFile, owner, deathSignal: 'INT' });
    // Probe through the Unix socket (trust), so readiness does not depend on the password.
    await waitUntil(`postgres on port ${port}`, s, logFile, async () => {
      const client = new pg.Client({ host: dir, port, user, database, connectionTimeoutMillis: 2000 });
      client.on('error', () => undefined);
      try {
        await client.connect();
        await client.query('SELECT 1');
        return !standby;
      } catch (err) {
        if (standby && (err as { code?: string }).code === '57P03') return true;
        throw err;
      } finally {
        await client.end().catch(() => undefined);
      }
    });
    return s;
  };

  const base = makeHandleBase('postgres', dir, logFile, launch, 'SIGINT', 15_000);
  const urlFor = (o: UrlOverrides = {}): string =>
    buildUrl('postgres', host, port, o.user ?? user, o.password ?? password, o.database ?? database, o.params);
  const handle: PostgresHandle = Object.assign(base, {
    kind: 'postgres' as const,
    host,
    port,
    password,
    dir,
    user,
    database,
    url: urlFor(),
    urlFor,
    ...(caFile ? { caFile } : {}),
  });
  if (!opts.defer) await startOrCleanup(handle);
  return handle;
}

export async function startMariadb(opts: StartMariadbOptions = {}): Promise<MariadbHandle> {
  const avail = serverAvailability('mariadb');
  if (!avail.ok) throw new Error(avail.message);
  const { binaries } = findBinaries('mariadb');
  const owner = ids('mysql');
  const dir = await makeDir('maria', owner);
  const data = join(dir, 'data');
  const socket = join(dir, 'sock');
  const logFile = join(dir, 'server.log');
  const host = '127.0.0.1';
  const port = opts.port ?? (await freePort());
  const user = 'app';
  const database = 'app';
  const password = opts.password ?? randomPassword();

  try {
    await run([
      binaries['mariadb-install-db']!, '--no-defaults', ...(owner ? ['--user=mysql'] : []), `--datadir=${data}`,
      '--auth-root-authentication-method=normal', '--skip-test-db',
    ]);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  if (owner) await run(['chown', '-R', `${owner.uid}:${owner.gid}`, data]);

  const serverArgs = [
    binaries.mariadbd!, '--no-defaults', `--datadir=${data}`, `--port=${port}`, `--bind-address=${host}`,
    `--socket=${socket}`, `--pid-file=${join(dir, 'mariadbd.pid')}`, '--skip-name-resolve', '--skip-log-bin',
    '--innodb-buffer-pool-size=16M', '--max-connections=30',
  ];
  let provisioned = false;
  const launch = async (): Promise<Spawned> => {
    // Started directly as `mysql` (not --user=mysql as root) so the parent-death signal survives.
    const s = spawnServer(serverArgs, { logFile, owner, deathSignal: 'TERM' });
    await waitUntil(`mariadbd on port ${port}`, s, logFile, async () => {
      const conn = await mysql.createConnection({ socketPath: socket, user: 'root', connectTimeout: 2000 });
      try {
        if (!provisioned) {
          const q = (sql: string, values: unknown[] = []): Promise<unknown> => conn.query(sql, values);
          await q(`CREATE DATABASE IF NOT EXISTS \`${database}\``);
          await q(`CREATE USER IF NOT EXISTS ?@'%' IDENTIFIED BY ?`, [user, password]);
          await q(`GRANT ALL PRIVILEGES ON *.* TO ?@'%'`, [user]);
          await q(`CREATE USER IF NOT EXISTS 'limited'@'%' IDENTIFIED BY ?`, [password]);
          await q(`GRANT ALL PRIVILEGES ON \`${database}\`.* TO 'limited'@'%'`);
          provisioned = true;
        } else {
          await conn.query('SELECT 1');
        }
        return true;
      } finally {
        conn.destroy();
      }
    });
    return s;
  };
  const base = makeHandleBase('mariadb', dir, logFile, launch, 'SIGTERM', 20_000);
  const urlFor = (o: UrlOverrides = {}): string =>
    buildUrl('mysql', host, port, o.user ?? user, o.password ?? password, o.database ?? database, o.params);
  const handle: MariadbHandle = Object.assign(base, {
    kind: 'mariadb' as const,
    host,
    port,
    password,
    dir,
    user,
    database,
    url: urlFor(),
    urlFor,
  });
  if (!opts.defer) await startOrCleanup(handle);
  return handle;
}

/** Sends one command over a fresh RESP connection and returns the raw reply line(s). For test setup only. */
export async function redisCommand(port: number, args: string[], host = '127.0.0.1', timeoutMs = 5000): Promise<string> {
  return redisPipeline(port, [args], host, timeoutMs);
}

function encodeResp(args: string[]): string {
  return `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
}

/** Sends commands, resolves with everything read once `expectReplies` CRLF-terminated lines arrived. */
async function redisPipeline(
  port: number,
  commands: string[][],
  host = '127.0.0.1',
  timeoutMs = 5000,
  expectReplies = commands.length,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = netConnect({ host, port });
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`redis ${host}:${port} did not answer within ${timeoutMs}ms`));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(commands.map(encodeResp).join('')));
    sock.on('data', (d: string) => {
      buf += d;
      if ((buf.match(/\r\n/g) ?? []).length >= expectReplies) {
        clearTimeout(timer);
        sock.destroy();
        resolve(buf);
      }
    });
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

export async function startRedis(opts: StartRedisOptions = {}): Promise<RedisHandle> {
  const avail = serverAvailability('redis');
  if (!avail.ok) throw new Error(avail.message);
  const { binaries } = findBinaries('redis');
  const dir = await makeDir('redis');
  const logFile = join(dir, 'server.log');
  const host = '127.0.0.1';
  const port = opts.port ?? (await freePort());
  const password = opts.password ?? '';
  const common = [
    binaries['redis-server']!, '--port', String(port), '--bind', host, '--save', '', '--appendonly', 'no',
    '--dir', dir, '--daemonize', 'no', '--dbfilename', 'dump.rdb',
  ];
  const authArgs = password ? ['--requirepass', password] : [];
  // The PING answer that means "up" for this handle's purpose.
  const expected = opts.loading ? /^-LOADING/ : password ? /^(\+PONG|-NOAUTH)/ : /^\+PONG/;

  const waitFor = (s: Spawned, re: RegExp): Promise<void> =>
    waitUntil(`redis-server on port ${port}`, s, logFile, async () => re.test(await redisCommand(port, ['PING'], host, 2000)));

  if (opts.loading) {
    // Write an uncompressed 2000-key RDB (about 4 MB, one event loop turn per key while loading).
    const s = spawnServer([...common, '--rdbcompression', 'no'], { logFile, deathSignal: 'TERM' });
    await waitFor(s, /^\+PONG/);
    const value = 'x'.repeat(2000);
    const sets: string[][] = [];
    for (let i = 0; i < 2000; i++) sets.push(['SET', `k${i}`, value]);
    await redisPipeline(port, sets, host, 30_000);
    await redisCommand(port, ['SAVE'], host, 30_000);
    await stopProcess(s, 'SIGTERM', 10_000);
  }
  const serverArgs = opts.loading
    ? [...common, ...authArgs, '--key-load-delay', '50000', '--loading-process-events-interval-bytes', '1024']
    : [...common, ...authArgs];

  const launch = async (): Promise<Spawned> => {
    const s = spawnServer(serverArgs, { logFile, deathSignal: 'TERM' });
    await waitFor(s, expected);
    return s;
  };
  const base = makeHandleBase('redis', dir, logFile, launch, 'SIGTERM', 10_000);
  const urlFor = (o: Omit<UrlOverrides, 'user'> & { db?: number } = {}): string => {
    const pw = o.password ?? password;
    return buildUrl('redis', host, port, '', pw, String(o.db ?? 0), o.params);
  };
  const handle: RedisHandle = Object.assign(base, {
    kind: 'redis' as const,
    host,
    port,
    password,
    dir,
    url: urlFor(),
    urlFor,
  });
  if (!opts.defer) await startOrCleanup(handle);
  return handle;
}

async function startOrCleanup(handle: ServerHandle): Promise<void> {
  try {
    await handle.start();
  } catch (err) {
    await handle.stop().catch(() => undefined);
    throw err;
  }
}

export interface SilentServer {
  host: string;
  port: number;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Connections currently open (the client has not closed them). */
  readonly open: number;
  /** Resolves when every accepted connection has been closed by the client; rejects after deadlineMs. */
  waitAllClosed(deadlineMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** A TCP server that accepts connections and never sends a byte: the "hung dependency". */
export async function startSilentServer(host = '127.0.0.1'): Promise<SilentServer> {
  const sockets = new Set<import('node:net').Socket>();
  let accepted = 0;
  const srv = createServer((sock) => {
    accepted++;
    sockets.add(sock);
    sock.on('error', () => undefined);
    sock.on('close', () => sockets.delete(sock));
    // Read (and drop) what the client sends, so its FIN is seen and the socket closes.
    sock.resume();
  });
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, host, () => resolve());
  });
  const addr = srv.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    host,
    port,
    get accepted() {
      return accepted;
    },
    get open() {
      return sockets.size;
    },
    async waitAllClosed(deadlineMs = 5000) {
      const end = Date.now() + deadlineMs;
      while (sockets.size > 0) {
        if (Date.now() > end) throw new Error(`${sockets.size} connection(s) to the silent server still open after ${deadlineMs}ms`);
        await sleep(20);
      }
    },
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => srv.close(() => resolve()));
    },
  };
}
