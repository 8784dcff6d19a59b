// Real load balancers for the strategies suite: HAProxy (master-worker, admin and master sockets, a
// server-state-file) and nginx (own prefix, pidfile, error log), each in a temp dir of this run on a loopback
// port, in its own process group (util.run), stopped by that group. The config text is the one the strategy
// tests use (test/support/lb.ts: haproxyConfig / nginxConfig), ported to plain JS.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { killGroup, run, sleep } from './util.mjs';

/** test/support/lb.ts haproxyConfig: servers { name: port }, `disabled` ones start in MAINT. */
export function haproxyConfig({ dir, port, servers, backend = 'app', disabled = [], stateFile = true, retryOn = 'all-retryable-errors' }) {
  const lines = Object.entries(servers).map(([name, p]) => `  server ${name} 127.0.0.1:${p}${disabled.includes(name) ? ' disabled' : ''}`);
  return [
    'global',
    `  stats socket ${join(dir, 'admin.sock')} mode 600 level admin`,
    ...(stateFile ? [`  server-state-file ${join(dir, 'haproxy.state')}`] : []),
    '  nbthread 1',
    'defaults',
    '  mode http',
    '  timeout connect 1s',
    '  timeout client 30s',
    '  timeout server 30s',
    ...(stateFile ? ['  load-server-state-from-file global'] : []),
    '  option redispatch',
    `  retry-on ${retryOn}`,
    '  retries 3',
    '  default-server check inter 100ms fall 2 rise 1',
    'frontend fe',
    `  bind 127.0.0.1:${port}`,
    `  default_backend ${backend}`,
    `backend ${backend}`,
    ...lines,
    '',
  ].join('\n');
}

/** test/support/lb.ts nginxConfig: the upstream block lives in its own file, included in http{}. */
export function nginxConfig({ dir, port, upstreamFile, upstream = 'app', workerShutdownTimeout = '10s', workerProcesses = 1 }) {
  const t = (name) => `${name}_temp_path ${join(dir, 'tmp', name)};`;
  return [
    `worker_processes ${workerProcesses};`,
    `pid ${join(dir, 'nginx.pid')};`,
    `error_log ${join(dir, 'error.log')} info;`,
    `worker_shutdown_timeout ${workerShutdownTimeout};`,
    'events { worker_connections 256; }',
    'http {',
    '  access_log off;',
    `  ${t('client_body')} ${t('proxy')} ${t('fastcgi')} ${t('uwsgi')} ${t('scgi')}`,
    `  include ${upstreamFile};`,
    `  server { listen 127.0.0.1:${port}; location / { proxy_pass http://${upstream}; } }`,
    '}',
    '',
  ].join('\n');
}

/** One command on an HAProxy stats socket; the answer is everything up to the close. */
export function haproxyCommand(socket, command, timeoutMs = 2_000) {
  return new Promise((resolveCmd, reject) => {
    const chunks = [];
    let settled = false;
    const conn = connect({ path: socket });
    const settle = (error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      conn.destroy();
      if (error) reject(error);
      else resolveCmd(Buffer.concat(chunks).toString('utf8'));
    };
    const timer = setTimeout(() => settle(new Error(`haproxy ${socket} "${command}": no answer in ${timeoutMs} ms`)), timeoutMs);
    conn.on('connect', () => conn.write(`${command}\n`));
    conn.on('data', (c) => chunks.push(c));
    conn.on('end', () => settle(null));
    conn.on('close', () => settle(null));
    conn.on('error', (e) => settle(chunks.length && e.code === 'ECONNRESET' ? null : e));
  });
}

function accepts(port) {
  return new Promise((r) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      r(true);
    });
    s.once('error', () => r(false));
  });
}

async function until(what, timeoutMs, probe, explain = () => '') {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe()) return;
    if (Date.now() > deadline) throw new Error(`${what}: not after ${timeoutMs} ms\n${explain()}`);
    await sleep(20);
  }
}

const tail = (file) => {
  try {
    return readFileSync(file, 'utf8').slice(-2000);
  } catch {
    return '';
  }
};

/** SIGTERM to the group, bounded wait, then SIGKILL; `proc` is a util.run handle. */
async function stopProc(proc) {
  killGroup(proc.pid, 'SIGTERM');
  const gone = await Promise.race([proc.done.then(() => true), sleep(5_000).then(() => false)]);
  if (!gone) {
    killGroup(proc.pid, 'SIGKILL');
    await Promise.race([proc.done, sleep(2_000)]);
  }
}

/** `haproxy -W -S DIR/master.sock -f DIR/haproxy.cfg` in the foreground; resolves once it answers and accepts. */
export async function startHaproxy(options) {
  const { dir, port } = options;
  mkdirSync(dir, { recursive: true });
  const configFile = join(dir, 'haproxy.cfg');
  const logFile = join(dir, 'haproxy.log');
  writeFileSync(configFile, haproxyConfig(options));
  const adminSocket = join(dir, 'admin.sock');
  // stdout/stderr to its log via sh's redirection would add a shell; util.run pipes stderr, so keep stdout ignored
  const proc = run('sh', ['-c', 'exec haproxy -W -S "$0" -f "$1" >> "$2" 2>&1', join(dir, 'master.sock'), configFile, logFile], { cwd: dir, timeoutMs: 300_000 });
  const handle = {
    pid: proc.pid,
    port,
    backend: options.backend ?? 'app',
    adminSocket,
    stateFile: options.stateFile === false ? undefined : join(dir, 'haproxy.state'),
    command: (cmd) => haproxyCommand(adminSocket, cmd),
    log: () => tail(logFile),
    stop: () => stopProc(proc),
  };
  try {
    await until('haproxy answering on its admin socket', 10_000, async () => {
      if (!existsSync(adminSocket)) return false;
      return /^Name: HAProxy/m.test(await handle.command('show info').catch(() => ''));
    }, handle.log);
    await until(`haproxy accepting on 127.0.0.1:${port}`, 10_000, () => accepts(port), handle.log);
  } catch (error) {
    await handle.stop();
    throw error;
  }
  return handle;
}

/** `nginx -c DIR/nginx.conf -p DIR/ -g "daemon off;"`; the upstream file is written from `servers` if missing. */
export async function startNginx(options) {
  const { dir, port, upstreamFile, upstream = 'app', servers = {} } = options;
  mkdirSync(join(dir, 'tmp'), { recursive: true });
  const configFile = join(dir, 'nginx.conf');
  const prefix = `${dir}/`;
  const pidfile = join(dir, 'nginx.pid');
  const errorLog = join(dir, 'error.log');
  if (!existsSync(upstreamFile)) {
    writeFileSync(upstreamFile, `upstream ${upstream} {\n${Object.values(servers).map((p) => `    server 127.0.0.1:${p};`).join('\n')}\n}\n`);
  }
  writeFileSync(configFile, nginxConfig(options));
  const base = ['nginx', '-c', configFile, '-p', prefix];
  const proc = run('nginx', ['-c', configFile, '-p', prefix, '-g', 'daemon off;'], { cwd: dir, timeoutMs: 300_000 });
  const handle = {
    pid: proc.pid,
    port,
    pidfile,
    upstreamFile,
    testCommand: [...base, '-t'],
    reloadCommand: [...base, '-s', 'reload'],
    log: () => tail(errorLog),
    stop: () => stopProc(proc),
  };
  try {
    await until('nginx writing its pidfile', 10_000, () => {
      try {
        return Number(readFileSync(pidfile, 'utf8').trim()) === proc.pid;
      } catch {
        return false;
      }
    }, handle.log);
    await until(`nginx accepting on 127.0.0.1:${port}`, 10_000, () => accepts(port), handle.log);
  } catch (error) {
    await handle.stop();
    throw error;
  }
  return handle;
}
