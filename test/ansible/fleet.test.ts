// The Ansible collection (ansible/collections/…/safe_restart/fleet) and ansible/playbooks/rollout.yml against a
// real fleet: one sshd per "host" on 127.0.0.11…14 port 22 (its own host key, key auth for root), real
// ansible-playbook over real SSH, the fixture service of each host bound to the host's own address. Every case
// asserts the playbook's exit code, which release each host serves and whether it is the *same* process, and the
// fleet report (checked against ansible/fleet-report.schema.json).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { join, resolve } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLoad, type LoadReport } from '../support/load.js';
import { parseServersState } from '../../src/traffic/haproxy.js';
import { startFleetLb, type FleetLb } from './haproxy.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const ANSIBLE = join(ROOT, 'ansible');
const CLI = join(ROOT, 'bin', 'safe-restart.js');
const FIXTURES = join(import.meta.dirname, 'fixtures');
const SSHD = '/usr/sbin/sshd';
const HOSTS = ([1, 2, 3, 4] as const).map((i) => ({ name: `host${i}` as const, ip: `127.0.0.1${i}` }));
const underCi = process.env.CI === 'true';

function which(bin: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status === 0;
}
const missing = [
  ...['ansible-playbook', 'ssh', 'ssh-keygen', 'python3'].filter((b) => !which(b)),
  ...(existsSync(SSHD) ? [] : [SSHD]),
  ...(process.getuid?.() === 0 ? [] : ['root (sshd on port 22)']),
];
const why = `Ansible fleet tests need ${missing.join(', ')} (apt-get install -y ansible-core openssh-server)`;
if (missing.length > 0) {
  if (underCi) throw new Error(`${why}: missing under CI=true`);
  console.warn(`${why}: skipped`);
}

interface Report {
  outcome: string;
  halted_at: string | null;
  halted_in: string | null;
  counts: Record<string, number>;
  hosts: Array<{ host: string; status: string; previous_release: string | null; target_release: string | null; exit_code: number | null; duration_ms: number | null; task_ms: number | null; evidence: string | null; journal: string | null; message: string | null; reverted_to: string | null }>;
}
interface PlaybookRun { code: number | null; out: string; report: Report; ms: number }

let root = '';
let PORT = 0;
let DEP_PORT = 0;
const sshds = new Map<string, ChildProcess>();
const deps = new Map<string, Server>();
let runNo = 0;
const validateReport = new Ajv2020({ allErrors: true, strict: false, formats: { 'date-time': /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/ } }).compile(JSON.parse(readFileSync(join(ANSIBLE, 'fleet-report.schema.json'), 'utf8')));

function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 15_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function connects(host: string, port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = createConnection({ host, port });
    s.once('connect', () => (s.destroy(), res(true)));
    s.once('error', () => res(false));
  });
}

async function freePort(): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 30_000);
    const ok = await Promise.all(HOSTS.map((h) => connects(h.ip, port).then((c) => !c)));
    if (ok.every(Boolean)) return port;
  }
}

const hostDir = (name: string) => join(root, name);

async function startSshd(h: { name: string; ip: string }): Promise<void> {
  const child = spawn(SSHD, ['-D', '-e', '-f', join(root, 'ssh', `${h.name}.conf`)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  sshds.set(h.name, child);
  await until(`sshd of ${h.name} on ${h.ip}:22`, async () => {
    if (child.exitCode !== null) throw new Error(`sshd of ${h.name} exited ${child.exitCode}: ${err}`);
    return (await connects(h.ip, 22)) ? true : undefined;
  });
}

async function stopSshd(name: string): Promise<void> {
  const child = sshds.get(name);
  sshds.delete(name);
  if (!child || child.exitCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await gone;
}

function startDep(ip: string): Promise<void> {
  return new Promise((res, rej) => {
    const server = createServer((s) => s.end()).listen(DEP_PORT, ip, () => res());
    server.once('error', rej);
    deps.set(ip, server);
  });
}

function stopDep(ip: string): Promise<void> {
  const server = deps.get(ip);
  deps.delete(ip);
  return new Promise((res) => (server ? server.close(() => res()) : res()));
}

/** Every process whose cwd is under the test directory (the services), by pid. */
function ourProcesses(): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readlinkSync(`/proc/${entry}/cwd`).startsWith(`${root}/`)) pids.push(Number(entry));
    } catch { /* gone, or not ours to read */ }
  }
  return pids;
}

async function killServices(): Promise<void> {
  const pids = ourProcesses();
  for (const pid of pids) { try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ } }
  await until('the services to exit', () => {
    const alive = pids.filter((pid) => { try { return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8')); } catch { return false; } });
    return alive.length === 0 ? true : undefined;
  });
}

/** Which release each host serves, with the pid: "v2 1234", or "down". */
type HostName = 'host1' | 'host2' | 'host3' | 'host4';
async function serving(): Promise<Record<HostName, string>> {
  const out = {} as Record<HostName, string>;
  await Promise.all(HOSTS.map(async (h) => {
    try {
      const res = await fetch(`http://${h.ip}:${PORT}/healthz`, { signal: AbortSignal.timeout(2000) });
      out[h.name] = res.ok ? (await res.text()).trim().replace(/^ok /, '').replace(` ${h.name} `, ' ') : `HTTP ${res.status}`;
    } catch {
      out[h.name] = 'down';
    }
  }));
  return out;
}
const release = (s: string) => s.split(' ')[0];

function writeRelease(name: string, id: string, broken: boolean): void {
  const dir = join(hostDir(name), 'releases', id);
  mkdirSync(dir, { recursive: true });
  copyFileSync(join(import.meta.dirname, '..', 'fixtures', 'service', 'server.mjs'), join(dir, 'server.mjs'));
  // "v2 host1": /healthz answers "ok v2 host1 PID", / answers "v2 host1" (the load's servedBy says who served)
  writeFileSync(join(dir, 'RELEASE'), `${id} ${name}\n`);
  if (broken) writeFileSync(join(dir, 'BROKEN'), '1\n');
}

/** A fresh fleet: every host on v1 (started by a first `safe-restart run --release v1`), dependencies up. */
async function resetFleet(): Promise<void> {
  await killServices();
  await Promise.all(HOSTS.map((h) => (deps.has(h.ip) ? undefined : startDep(h.ip))));
  await Promise.all(HOSTS.map(async (h) => {
    const dir = hostDir(h.name);
    rmSync(dir, { recursive: true, force: true });
    for (const sub of ['run', 'log', 'state']) mkdirSync(join(dir, sub), { recursive: true });
    for (const id of ['v1', 'v2', 'v3']) writeRelease(h.name, id, id === 'v3');
    const recipe = readFileSync(join(FIXTURES, 'recipe.yaml.j2'), 'utf8')
      .replace('{{ fleet_dir }}', dir).replace('{{ fleet_host }}', h.ip)
      .replace('{{ fleet_port }}', String(PORT)).replace('{{ fleet_dep_port }}', String(DEP_PORT));
    writeFileSync(join(dir, 'recipe.yaml'), recipe);
    await new Promise<void>((res, rej) => {
      const child = spawn('node', [CLI, 'run', join(dir, 'recipe.yaml'), '--release', 'v1', '--state-dir', join(dir, 'state'), '--quiet'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
      child.on('exit', (code) => (code === 0 ? res() : rej(new Error(`first run on ${h.name} exited ${code}: ${out}`))));
    });
  }));
  const s = await serving();
  expect(Object.values(s).map(release)).toEqual(['v1', 'v1', 'v1', 'v1']);
}

/** Ends the ControlPersist masters of a control path dir (they would linger for 60 s, holding their sessions). */
function closeMasters(dir: string): void {
  for (const socket of readdirSync(dir)) spawnSync('ssh', ['-o', `ControlPath=${join(dir, socket)}`, '-O', 'exit', 'controlmaster'], { stdio: 'ignore', timeout: 5_000 });
}

async function playbook(extra: Record<string, unknown>, args: string[] = [], file = join(ANSIBLE, 'playbooks', 'rollout.yml')): Promise<PlaybookRun> {
  runNo += 1;
  const report = join(root, `report-${runNo}.json`);
  // a fresh control path per run: a killed sshd would otherwise stay "reachable" through ControlPersist
  const cp = mkdtempSync('/tmp/sr-cp-');
  const started = Date.now();
  const child = spawn('ansible-playbook', ['-i', join(root, 'inventory'), file,
    '-e', JSON.stringify({ safe_restart_report: report, ...extra }), ...args], {
    cwd: ANSIBLE,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      ANSIBLE_CONFIG: join(ANSIBLE, 'ansible.cfg'),
      ANSIBLE_SSH_CONTROL_PATH_DIR: cp,
      ANSIBLE_LOCAL_TEMP: join(root, 'ansible-local'),
      ANSIBLE_REMOTE_TEMP: join(root, 'ansible-remote'),
      ANSIBLE_NOCOLOR: '1',
      ANSIBLE_HOST_KEY_CHECKING: 'True',
      ANSIBLE_COLLECTIONS_PATH: join(ANSIBLE, 'collections'),
    },
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const code = await new Promise<number | null>((r) => child.on('exit', r));
  closeMasters(cp);
  rmSync(cp, { recursive: true, force: true });
  if (file !== join(ANSIBLE, 'playbooks', 'rollout.yml')) return { code, out, report: null as unknown as Report, ms: Date.now() - started };
  if (!existsSync(report)) throw new Error(`no fleet report written (exit ${code}):\n${out}`);
  const parsed = JSON.parse(readFileSync(report, 'utf8')) as Report;
  if (!validateReport(parsed)) throw new Error(`report does not match the schema: ${JSON.stringify(validateReport.errors)}`);
  expect(existsSync(report.replace(/\.json$/, '.txt'))).toBe(true);
  return { code, out, report: parsed, ms: Date.now() - started };
}

const statuses = (r: Report) => Object.fromEntries(r.hosts.map((h) => [h.host, h.status]));
const explain = (run: PlaybookRun) => `exit ${run.code}\n${run.out.slice(-6000)}`;

/** The hosts of each serial batch of the rollout play: each "TASK [Run safe-restart]" header starts one. */
function batches(out: string): string[][] {
  return out.split('TASK [Run safe-restart]').slice(1).map((part) => {
    const end = part.search(/\n(TASK|PLAY) \[/);
    const block = end < 0 ? part : part.slice(0, end);
    return [...block.matchAll(/^(?:ok|changed|fatal|failed|skipping): \[(host\d)\]/gm)].map((m) => m[1]!).sort();
  });
}

function adhoc(host: string, module: string, args: string): Promise<{ code: number | null; out: string }> {
  const cp = mkdtempSync(join(root, 'cp-'));
  return new Promise((res) => {
    const child = spawn('ansible', ['-i', join(root, 'inventory'), host, '-m', module, '-a', args, '-o'], {
      cwd: ANSIBLE, stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ANSIBLE_CONFIG: join(ANSIBLE, 'ansible.cfg'), ANSIBLE_NOCOLOR: '1', ANSIBLE_SSH_CONTROL_PATH_DIR: cp, ANSIBLE_REMOTE_TEMP: join(root, 'ansible-remote'), ANSIBLE_LOCAL_TEMP: join(root, 'ansible-local') },
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('exit', (code) => (closeMasters(cp), res({ code, out })));
  });
}
const adhocResult = (out: string) => JSON.parse(out.slice(out.indexOf('{'))) as Record<string, unknown>;
const commonArgs = (name: string, binary = join(root, 'safe-restart')) => `recipe=${join(hostDir(name), 'recipe.yaml')} state_dir=${join(hostDir(name), 'state')} binary=${binary}`;

describe.skipIf(missing.length > 0)('Ansible rollout over real SSH (4 sshd on 127.0.0.11-14)', () => {
  beforeAll(async () => {
    root = mkdtempSync('/tmp/sr-ansible-');
    PORT = await freePort();
    DEP_PORT = await freePort();
    mkdirSync('/run/sshd', { recursive: true });
    const ssh = join(root, 'ssh');
    mkdirSync(ssh);
    sh('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'controller', '-f', join(ssh, 'client')]);
    const known: string[] = [];
    const inventory = ['[fleet]'];
    for (const h of HOSTS) {
      sh('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', h.name, '-f', join(ssh, h.name)]);
      known.push(`${h.ip} ${readFileSync(join(ssh, `${h.name}.pub`), 'utf8').split(' ').slice(0, 2).join(' ')}`);
      writeFileSync(join(ssh, `${h.name}.conf`), [
        `ListenAddress ${h.ip}:22`, `HostKey ${join(ssh, h.name)}`, `PidFile ${join(ssh, `${h.name}.pid`)}`,
        `AuthorizedKeysFile ${join(ssh, 'client.pub')}`, 'PermitRootLogin prohibit-password', 'PasswordAuthentication no',
        'KbdInteractiveAuthentication no', 'StrictModes no', 'UsePAM no', 'PrintMotd no', 'MaxStartups 100',
        // file transfers (the role's copy) over sftp, as on a real host, not the piped fallback
        'Subsystem sftp internal-sftp', '',
      ].join('\n'));
      inventory.push(`${h.name} ansible_host=${h.ip} fleet_dir=${hostDir(h.name)}`);
    }
    writeFileSync(join(ssh, 'known_hosts'), `${known.join('\n')}\n`);
    const binary = join(root, 'safe-restart');
    writeFileSync(binary, `#!/bin/sh\nexec node ${CLI} "$@"\n`);
    chmodSync(binary, 0o755);
    inventory.push('', '[fleet:vars]', 'ansible_user=root', 'ansible_python_interpreter=/usr/bin/python3',
      `ansible_ssh_private_key_file=${join(ssh, 'client')}`,
      `ansible_ssh_common_args="-o UserKnownHostsFile=${join(ssh, 'known_hosts')} -o StrictHostKeyChecking=yes"`,
      'safe_restart_recipe="{{ fleet_dir }}/recipe.yaml"', 'safe_restart_state_dir="{{ fleet_dir }}/state"',
      `safe_restart_binary=${binary}`, '');
    writeFileSync(join(root, 'inventory'), inventory.join('\n'));
    await Promise.all(HOSTS.map(startSshd));
    await resetFleet();
  });

  afterAll(async () => {
    for (const name of [...sshds.keys()]) await stopSshd(name);
    for (const ip of [...deps.keys()]) await stopDep(ip);
    if (root) {
      await killServices();
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('the collection has the CLI version of package.json', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const galaxy = readFileSync(join(ANSIBLE, 'collections/ansible_collections/safe_restart/fleet/galaxy.yml'), 'utf8');
    expect(galaxy).toMatch(new RegExp(`^version: ${pkg.version.replace(/\./g, '\\.')}$`, 'm'));
  });

  it('check mode runs preflight everywhere and changes nothing', async () => {
    const before = await serving();
    const run = await playbook({ safe_restart_release: 'v2' }, ['--check']);
    expect(run.code, explain(run)).toBe(0);
    expect(run.out).toMatch(/TASK \[Preflight the restart\][^]*changed: \[host4\]/);
    expect(await serving()).toEqual(before);
    expect(Object.values(statuses(run.report))).toEqual(['untouched', 'untouched', 'untouched', 'untouched']);
  });

  it('v2 across 4 hosts: all succeeded, exit 0, report complete', async () => {
    const run = await playbook({ safe_restart_release: 'v2' });
    expect(run.code, explain(run)).toBe(0);
    expect(run.report.outcome).toBe('complete');
    expect(run.report.halted_at).toBeNull();
    expect(statuses(run.report)).toEqual({ host1: 'succeeded', host2: 'succeeded', host3: 'succeeded', host4: 'succeeded' });
    for (const h of run.report.hosts) {
      expect([h.previous_release, h.target_release, h.exit_code]).toEqual(['v1', 'v2', 0]);
      expect(existsSync(h.journal!)).toBe(true);
      // the task's wall time on the controller holds the run's own duration (bench/suites/ansible.mjs: the difference)
      expect(h.task_ms).toBeGreaterThanOrEqual(h.duration_ms!);
    }
    expect(Object.values(await serving()).map(release)).toEqual(['v2', 'v2', 'v2', 'v2']);
    expect(readFileSync(join(root, `report-${runNo}.txt`), 'utf8')).toMatch(/host1\s+succeeded\s+v1 → v2\s+0/);
  });

  it('re-running the same release: every host ok/unchanged, nothing restarted', async () => {
    const before = await serving();
    const run = await playbook({ safe_restart_release: 'v2' });
    expect(run.code, explain(run)).toBe(0);
    expect(Object.values(statuses(run.report))).toEqual(['already_current', 'already_current', 'already_current', 'already_current']);
    expect(await serving()).toEqual(before);
  });

  it('v3 (broken): host1 rolls back (exit 2) and the rollout halts; hosts 2-4 untouched, same pids', async () => {
    const before = await serving();
    const run = await playbook({ safe_restart_release: 'v3' });
    expect(run.code, explain(run)).not.toBe(0);
    expect(run.report.outcome).toBe('halted at host1');
    expect(statuses(run.report)).toEqual({ host1: 'rolled_back', host2: 'untouched', host3: 'untouched', host4: 'untouched' });
    const h1 = run.report.hosts[0]!;
    expect([h1.exit_code, h1.previous_release, h1.target_release]).toEqual([2, 'v2', 'v3']);
    expect(existsSync(h1.evidence!)).toBe(true);
    const after = await serving();
    expect(release(after.host1)).toBe('v2');
    expect(after.host1).not.toBe(before.host1);
    expect([after.host2, after.host3, after.host4]).toEqual([before.host2, before.host3, before.host4]);
  });

  it('v3 with serial 2: the batch-mate finishes (also rolled back), the next batch is untouched', async () => {
    const before = await serving();
    const run = await playbook({ safe_restart_release: 'v3', safe_restart_serial: 2 });
    expect(run.code, explain(run)).not.toBe(0);
    expect(batches(run.out)).toEqual([['host1', 'host2']]);
    expect(run.report.outcome).toBe('halted at host1');
    expect(statuses(run.report)).toEqual({ host1: 'rolled_back', host2: 'rolled_back', host3: 'untouched', host4: 'untouched' });
    const after = await serving();
    expect([release(after.host1), release(after.host2)]).toEqual(['v2', 'v2']);
    expect([after.host3, after.host4]).toEqual([before.host3, before.host4]);
  });

  it('v3 with serial [1, "50%"] (given as docs/ci.md does): host1 fails alone in the canary batch, hosts 2-4 untouched', async () => {
    const before = await serving();
    // a JSON -e: key=value splits at the space of `[1, "50%"]` (ansible-playbook then dies with "Unexpected Exception")
    const run = await playbook({ safe_restart_release: 'v3' }, ['-e', '{"safe_restart_serial": [1, "50%"]}']);
    expect(run.code, explain(run)).not.toBe(0);
    expect(batches(run.out)).toEqual([['host1']]);
    expect(run.report.outcome).toBe('halted at host1');
    expect(statuses(run.report)).toEqual({ host1: 'rolled_back', host2: 'untouched', host3: 'untouched', host4: 'untouched' });
    expect(run.report.hosts[0]!.exit_code).toBe(2);
    const after = await serving();
    expect(release(after.host1)).toBe('v2');
    expect(after.host1).not.toBe(before.host1);
    expect([after.host2, after.host3, after.host4]).toEqual([before.host2, before.host3, before.host4]);
  });

  it('a good release with serial "50%": two batches of two, all succeeded', async () => {
    const run = await playbook({ safe_restart_release: 'v1', safe_restart_serial: '50%' });
    expect(run.code, explain(run)).toBe(0);
    expect(batches(run.out)).toEqual([['host1', 'host2'], ['host3', 'host4']]);
    expect(run.report.outcome).toBe('complete');
    expect(statuses(run.report)).toEqual({ host1: 'succeeded', host2: 'succeeded', host3: 'succeeded', host4: 'succeeded' });
    expect(Object.values(await serving()).map(release)).toEqual(['v1', 'v1', 'v1', 'v1']);
  });

  it('a dependency down on host3: preflight halts the rollout, nothing touched anywhere', async () => {
    await resetFleet();
    const before = await serving();
    await stopDep(HOSTS[2]!.ip);
    try {
      const run = await playbook({ safe_restart_release: 'v2' });
      expect(run.code, explain(run)).not.toBe(0);
      expect(run.report.outcome).toBe('halted at host3');
      expect(run.report.halted_in).toBe('preflight');
      expect(statuses(run.report)).toEqual({ host1: 'untouched', host2: 'untouched', host3: 'aborted', host4: 'untouched' });
      expect(run.report.hosts[2]!.message).toMatch(/check "database" not ready/);
      expect(await serving()).toEqual(before);
    } finally {
      await startDep(HOSTS[2]!.ip);
    }
  });

  it('exit 4 on host2 names recover; after the lock is gone a re-run resumes (host1 ok/unchanged)', async () => {
    const lock = join(hostDir('host2'), 'state', 'fleet-web', 'lock');
    writeFileSync(lock, JSON.stringify({ runId: 'r-elsewhere', command: 'run', pid: 1, procStart: null, host: 'another-host', startedAt: new Date().toISOString(), journal: '' }));
    const run = await playbook({ safe_restart_release: 'v2', safe_restart_preflight: false });
    expect(run.code, explain(run)).not.toBe(0);
    expect(run.report.outcome).toBe('halted at host2');
    expect(statuses(run.report)).toEqual({ host1: 'succeeded', host2: 'locked', host3: 'untouched', host4: 'untouched' });
    expect(run.report.hosts[1]!.exit_code).toBe(4);
    expect(run.report.hosts[1]!.message).toMatch(/holds the lock: pid 1 on another-host.*`safe-restart recover .*recipe\.yaml` must run first/);
    expect(run.out).toMatch(/safe-restart recover .*host2\/recipe\.yaml/);

    rmSync(lock);
    const again = await playbook({ safe_restart_release: 'v2' });
    expect(again.code, explain(again)).toBe(0);
    expect(statuses(again.report)).toEqual({ host1: 'already_current', host2: 'succeeded', host3: 'succeeded', host4: 'succeeded' });
    expect(Object.values(await serving()).map(release)).toEqual(['v2', 'v2', 'v2', 'v2']);
  });

  it('a host whose sshd is gone: the rollout halts there, reported unreachable', async () => {
    await stopSshd('host3');
    try {
      const before = await serving();
      // skip preflight so that the rollout itself meets the dead host (max_fail_percentage does not count it)
      const run = await playbook({ safe_restart_release: 'v1', safe_restart_preflight: false });
      expect(run.code, explain(run)).not.toBe(0);
      expect(run.report.outcome).toBe('halted at host3');
      expect(statuses(run.report)).toEqual({ host1: 'succeeded', host2: 'succeeded', host3: 'unreachable', host4: 'untouched' });
      expect(run.report.hosts[2]!.message).toMatch(/127\.0\.0\.13/);
      const after = await serving();
      expect([release(after.host1), release(after.host2)]).toEqual(['v1', 'v1']);
      expect([after.host3, after.host4]).toEqual([before.host3, before.host4]);
    } finally {
      await startSshd(HOSTS[2]!);
    }
  });

  it('opt-in fleet rollback: a halt at host3 puts hosts 1-2 back on their own previous release', async () => {
    await resetFleet();
    for (const h of HOSTS) writeRelease(h.name, 'v4', h.name === 'host3');
    const run = await playbook({ safe_restart_release: 'v4', safe_restart_fleet_rollback: true });
    expect(run.code, explain(run)).not.toBe(0);
    expect(run.report.outcome).toBe('halted at host3');
    expect(statuses(run.report)).toEqual({ host1: 'reverted', host2: 'reverted', host3: 'rolled_back', host4: 'untouched' });
    expect(run.report.hosts[0]!).toMatchObject({ previous_release: 'v1', target_release: 'v4', reverted_to: 'v1' });
    // newest first: host2 was reverted before host1
    expect(run.out.indexOf('changed: [host2]', run.out.indexOf('Fleet rollback'))).toBeLessThan(run.out.indexOf('changed: [host1]', run.out.indexOf('Fleet rollback')));
    expect(run.out).toMatch(/rollout halted at host3/);
    expect(Object.values(await serving()).map(release)).toEqual(['v1', 'v1', 'v1', 'v1']);
  });

  it('async shorter than the worst case is refused before anything runs', async () => {
    const before = await serving();
    const run = await playbook({ safe_restart_release: 'v2', safe_restart_async: 5 });
    expect(run.code, explain(run)).not.toBe(0);
    expect(run.out).toMatch(/async: 5s is shorter than the worst case of this run/);
    expect(statuses(run.report).host1).toBe('aborted');
    expect(await serving()).toEqual(before);

    // long enough: the run goes ahead under async (on one host: async polling costs seconds per host)
    const bounded = await playbook({ safe_restart_release: 'v2', safe_restart_async: 300 }, ['--limit', 'host1']);
    expect(bounded.code, explain(bounded)).toBe(0);
    expect(statuses(bounded.report)).toEqual({ host1: 'succeeded', host2: 'untouched', host3: 'untouched', host4: 'untouched' });
    const after = await serving();
    expect(release(after.host1)).toBe('v2');
    expect(after.host2).toBe(before.host2);
  });

  it('the safe_restart_install role templates a recipe only when safe-restart validate accepts it', async () => {
    const play = join(root, 'install.yml');
    writeFileSync(play, [
      '- hosts: host1', '  gather_facts: false', '  roles:', '    - role: safe_restart_install',
      `      safe_restart_recipe_template: ${join(root, 'recipe.yaml.j2')}`,
      '      safe_restart_recipe: "{{ fleet_dir }}/installed/recipe.yaml"',
      '      fleet_host: 127.0.0.11', `      fleet_port: ${PORT}`, `      fleet_dep_port: ${DEP_PORT}`, '',
    ].join('\n'));
    const template = readFileSync(join(FIXTURES, 'recipe.yaml.j2'), 'utf8');
    writeFileSync(join(root, 'recipe.yaml.j2'), template);
    const ok = await playbook({}, [], play);
    expect(ok.code, explain(ok)).toBe(0);
    const installed = join(hostDir('host1'), 'installed', 'recipe.yaml');
    expect(readFileSync(installed, 'utf8')).toContain(`HOST: "127.0.0.11"`);

    writeFileSync(join(root, 'recipe.yaml.j2'), template.replace('signal: SIGTERM', 'signal: SIGTREM'));
    const bad = await playbook({}, [], play);
    expect(bad.code, explain(bad)).not.toBe(0);
    expect(bad.out).toMatch(/failed to validate/);
    expect(readFileSync(installed, 'utf8')).toContain('signal: SIGTERM');
  });

  it('safe_restart_info returns status and history as facts; state=recovered with nothing to recover is ok', async () => {
    const common = commonArgs('host1');
    const before = await serving();
    const info = await adhoc('host1', 'safe_restart.fleet.safe_restart_info', `${common} history_limit=2`);
    expect(info.code, info.out).toBe(0);
    const result = JSON.parse(info.out.slice(info.out.indexOf('{'))) as { ansible_facts: { safe_restart_status: Array<{ recipe: string; last_good_release: string }>; safe_restart_history: unknown[] }; changed: boolean };
    expect(result.changed).toBe(false);
    expect(result.ansible_facts.safe_restart_status[0]).toMatchObject({ recipe: 'fleet-web', last_good_release: release(before.host1) });
    expect(result.ansible_facts.safe_restart_history.length).toBeGreaterThan(0);

    const recover = await adhoc('host1', 'safe_restart.fleet.safe_restart', `${common} state=recovered`);
    expect(recover.code, recover.out).toBe(0);
    expect(recover.out).toMatch(/host1 \| SUCCESS => .*"outcome": "nothing_to_recover"/);
    expect(await serving()).toEqual(before);
  });

  it('a run killed (kill -9) during its gates: the module names recover; state=recovered brings the host back on its previous release, changed, not failed', async () => {
    const dir = hostDir('host4');
    const before = await serving();
    const events: Array<{ event?: string; phase?: string }> = [];
    const child = spawn('node', [CLI, 'run', join(dir, 'recipe.yaml'), '--release', 'v3', '--state-dir', join(dir, 'state'), '--json'], { stdio: ['ignore', 'pipe', 'ignore'] });
    const exited = new Promise((r) => child.once('exit', r));
    let buffered = '';
    child.stdout!.on('data', (d: Buffer) => {
      buffered += d;
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) { try { events.push(JSON.parse(line)); } catch { /* not an event */ } }
    });
    try {
      await until('the run to reach its gates', () => (events.some((e) => e.event === 'check_started' && e.phase === 'gates') ? true : undefined));
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
    const broken = Number(readFileSync(join(dir, 'run', 'web.pid'), 'utf8'));
    expect(readFileSync(`/proc/${broken}/cmdline`, 'utf8')).toContain('server.mjs');
    expect(release((await serving()).host4)).not.toBe(release(before.host4));

    const common = commonArgs('host4');
    const locked = await adhoc('host4', 'safe_restart.fleet.safe_restart', `${common} release=v2`);
    expect(locked.code, locked.out).not.toBe(0);
    expect(locked.out).toMatch(/died during gates.*safe-restart recover/);

    const recover = await adhoc('host4', 'safe_restart.fleet.safe_restart', `${common} state=recovered`);
    expect(recover.code, recover.out).toBe(0);
    expect(recover.out).toMatch(/^host4 \| CHANGED => /m);
    const result = adhocResult(recover.out);
    // PREVIOUS of the recovery is the dead run's TARGET; it goes back to the last good release
    expect(result).toMatchObject({ changed: true, exit_code: 2, previous_release: 'v3', target_release: release(before.host4) });
    expect(result.failed ?? false).toBe(false);
    const after = await serving();
    expect(release(after.host4)).toBe(release(before.host4));
    expect(after.host4).not.toBe(before.host4);
    // the broken release the dead run had started is gone (recover killed its process group)
    expect(existsSync(`/proc/${broken}`) && !/\) Z /.test(readFileSync(`/proc/${broken}/stat`, 'utf8'))).toBe(false);
    // and runs are allowed again: the next rollout finds nothing to recover
    const again = await adhoc('host4', 'safe_restart.fleet.safe_restart', `${common} state=recovered`);
    expect(again.out).toMatch(/"outcome": "nothing_to_recover"/);
  });

  it('the safe_restart_install role installs the CLI from a bundled `npm pack` tarball on the host, offline, once; the installed CLI restarts the service', async () => {
    const pack = join(root, 'pack');
    mkdirSync(pack);
    // the tree as built by the tests' global setup, its production dependencies bundled: a host with no registry
    // (and the sshd session here has none: npm would wait on it) installs it with --offline, fetching nothing
    const packed = spawnSync(process.execPath, [join(ROOT, 'scripts', 'pack-bundle.mjs'), pack], { cwd: ROOT, encoding: 'utf8' });
    expect(packed.status, packed.stderr).toBe(0);
    const tarball = packed.stdout.trim().split('\n').at(-1)!;
    expect(tarball).toMatch(/-bundle\.tgz$/);
    const prefix = join(hostDir('host1'), 'opt');
    const installed = join(prefix, 'bin', 'safe-restart');
    const play = join(root, 'install-cli.yml');
    writeFileSync(play, [
      '- hosts: host1', '  gather_facts: false', '  roles:', '    - role: safe_restart_install',
      `      safe_restart_install_src: ${tarball}`, `      safe_restart_install_prefix: ${prefix}`,
      // a role parameter: the inventory's safe_restart_binary (the checkout's wrapper) would win over the role default
      `      safe_restart_binary: ${installed}`,
      // an empty cache of its own: everything must come from the tarball
      `      safe_restart_install_npm_args: [--offline, --cache, ${join(pack, 'cache')}]`, '',
    ].join('\n'));
    const first = await playbook({}, [], play);
    expect(first.code, explain(first)).toBe(0);
    expect(first.out).toMatch(/TASK \[safe_restart_install : Install it with npm\][^\n]*\nchanged: \[host1\]/);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(first.out).toContain(`${installed}: safe-restart ${pkg.version}`);
    expect(readlinkSync(installed)).toMatch(/node_modules\/safe-restart\/bin\/safe-restart\.js$/);

    // idempotent: the same tarball again installs nothing
    const second = await playbook({}, [], play);
    expect(second.code, explain(second)).toBe(0);
    expect(second.out).toMatch(/TASK \[safe_restart_install : Install it with npm\][^\n]*\nskipping: \[host1\]/);
    expect(second.out).toMatch(/host1\s+: ok=\d+\s+changed=0 /);

    // the installed CLI, not the checkout's, does a real restart through the module
    const before = await serving();
    const target = release(before.host1) === 'v2' ? 'v1' : 'v2';
    const run = await playbook({ safe_restart_release: target, safe_restart_binary: installed, safe_restart_preflight: false }, ['--limit', 'host1', '-v']);
    expect(run.code, explain(run)).toBe(0);
    expect(statuses(run.report).host1).toBe('succeeded');
    expect(run.out).toContain(`"commands": [["${installed}", "plan"`);
    expect(run.out).toContain(`["${installed}", "run"`);
    const after = await serving();
    expect(release(after.host1)).toBe(target);
    expect(after.host1).not.toBe(before.host1);
  }, 180_000);


  // The headline case: the rollout drains each host in HAProxy before its restart and puts it back after (the
  // playbook's delegate_to + throttle: 1 tasks, safe_restart_haproxy), while the load generator sends 200 req/s
  // through HAProxy. Every host has its own address and its service answers "RELEASE HOST": servedBy says who.
  describe('4 hosts behind one HAProxy under 200 req/s', () => {
    let lb: FleetLb | undefined;
    beforeAll(async () => {
      await resetFleet();
      const dir = join(root, 'haproxy');
      mkdirSync(dir);
      lb = await startFleetLb(dir, Object.fromEntries(HOSTS.map((h) => [h.name, `${h.ip}:${PORT}`])));
    });
    afterAll(async () => {
      await lb?.stop();
    });

    const perHost = (servedBy: Record<string, number>) => Object.fromEntries(HOSTS.map((h) => [h.name,
      Object.entries(servedBy).filter(([key]) => key.endsWith(` ${h.name}`)).reduce((n, [, v]) => n + v, 0)]));

    /** The rollout under load; the load goes on until every host has answered again after the playbook ended. */
    async function rolloutUnderLoad(extra: Record<string, unknown>): Promise<{ run: PlaybookRun; load: LoadReport }> {
      const { adminSocket: socket, backend, stateFile: state_file } = lb!;
      const load = startLoad({ url: `http://127.0.0.1:${lb!.port}/`, rate: 200, mode: 'mixed', maxDurationMs: 300_000 });
      try {
        await until('HAProxy to serve the load', () => (load.snapshot().ok >= 50 ? true : undefined));
        const run = await playbook({ ...extra, safe_restart_haproxy: { socket, backend, state_file, timeout: 20 } });
        const atEnd = perHost(load.snapshot().servedBy);
        await until('every host to answer after the rollout (back in rotation)', () => {
          const now = perHost(load.snapshot().servedBy);
          return HOSTS.every((h) => now[h.name]! > atEnd[h.name]!) ? true : undefined;
        });
        return { run, load: await load.stop() };
      } finally {
        await load.stop();
      }
    }

    async function expectNoFailedRequest(load: LoadReport): Promise<void> {
      const why = `${load.failed} of ${load.sent} failed, first: ${JSON.stringify(load.failures.slice(0, 5))}\n${lb!.log()}`;
      expect(load.byKind, why).toEqual({ status5xx: 0, status4xx: 0, otherStatus: 0, reset: 0, refused: 0, timeout: 0, other: 0 });
      expect(load.failed, why).toBe(0);
      expect(load.ok).toBe(load.sent);
      expect(load.ok).toBeGreaterThanOrEqual(100);
      expect(await lb!.status()).toEqual({ host1: 'UP', host2: 'UP', host3: 'UP', host4: 'UP' });
      // and the state a reload would load again says the same: every server ready (srv_admin_state 0)
      const saved = parseServersState(readFileSync(lb!.stateFile, 'utf8')).filter((r) => r.be_name === lb!.backend);
      expect(Object.fromEntries(saved.map((r) => [r.srv_name, r.srv_admin_state]))).toEqual({ host1: '0', host2: '0', host3: '0', host4: '0' });
    }

    it('a good release: all 4 succeeded, 0 failed requests, every host back in rotation on v2', async () => {
      const { run, load } = await rolloutUnderLoad({ safe_restart_release: 'v2' });
      expect(run.code, explain(run)).toBe(0);
      expect(statuses(run.report)).toEqual({ host1: 'succeeded', host2: 'succeeded', host3: 'succeeded', host4: 'succeeded' });
      expect(run.out).toMatch(/TASK \[Drain this host in HAProxy[^\n]*\nchanged: \[host1 -> localhost\]/);
      await expectNoFailedRequest(load);
      for (const h of HOSTS) {
        expect(load.servedBy[`v1 ${h.name}`], `v1 on ${h.name}`).toBeGreaterThan(0);
        expect(load.servedBy[`v2 ${h.name}`], `v2 on ${h.name}`).toBeGreaterThan(0);
      }
      expect(Object.values(await serving()).map(release)).toEqual(['v2', 'v2', 'v2', 'v2']);
    });

    it('a bad release: host1 rolls back (exit 2) and the rollout halts, 0 failed requests, host1 back in rotation on v2, hosts 2-4 untouched', async () => {
      const before = await serving();
      const { run, load } = await rolloutUnderLoad({ safe_restart_release: 'v3' });
      expect(run.code, explain(run)).not.toBe(0);
      expect(run.report.outcome).toBe('halted at host1');
      expect(statuses(run.report)).toEqual({ host1: 'rolled_back', host2: 'untouched', host3: 'untouched', host4: 'untouched' });
      expect(run.report.hosts[0]!.exit_code).toBe(2);
      await expectNoFailedRequest(load);
      // v3 ran on host1 only while it was out of rotation: not one request reached it
      expect(Object.keys(load.servedBy).filter((k) => k.startsWith('v3'))).toEqual([]);
      const after = await serving();
      expect(release(after.host1)).toBe('v2');
      expect(after.host1).not.toBe(before.host1);
      expect([after.host2, after.host3, after.host4]).toEqual([before.host2, before.host3, before.host4]);
    });

    it('a drain that does not finish in time: host1 put back into rotation, nothing restarted anywhere, the rollout halts', async () => {
      // four requests HAProxy holds open (/slow answers after 20 s), one per server (round robin)
      const slow = HOSTS.map(() => new AbortController());
      const held = slow.map((c) => fetch(`http://127.0.0.1:${lb!.port}/slow`, { signal: c.signal }).catch(() => undefined));
      try {
        await until('a held session on every server', async () => (Object.values(await lb!.sessions()).every((n) => n >= 1) ? true : undefined));
        const before = await serving();
        const { adminSocket: socket, backend, stateFile: state_file } = lb!;
        const run = await playbook({ safe_restart_release: 'v1', safe_restart_haproxy: { socket, backend, state_file, timeout: 1 } });
        expect(run.code, explain(run)).not.toBe(0);
        expect(run.report.outcome).toBe('halted at host1');
        expect(statuses(run.report)).toEqual({ host1: 'aborted', host2: 'untouched', host3: 'untouched', host4: 'untouched' });
        expect(run.report.hosts[0]!.message).toMatch(/load balancer: host1 still has 1 sessions .* put back into rotation, nothing restarted/);
        expect(await serving()).toEqual(before);
        expect(await lb!.status()).toEqual({ host1: 'UP', host2: 'UP', host3: 'UP', host4: 'UP' });
      } finally {
        for (const c of slow) c.abort();
        await Promise.all(held);
      }
    });

    it('fleet rollback behind HAProxy: a halt at host3 reverts hosts 2 then 1, each drained and put back, 0 failed requests', async () => {
      for (const h of HOSTS) writeRelease(h.name, 'v4', h.name === 'host3');
      const { run, load } = await rolloutUnderLoad({ safe_restart_release: 'v4', safe_restart_fleet_rollback: true });
      expect(run.code, explain(run)).not.toBe(0);
      expect(statuses(run.report)).toEqual({ host1: 'reverted', host2: 'reverted', host3: 'rolled_back', host4: 'untouched' });
      await expectNoFailedRequest(load);
      expect(load.servedBy['v4 host1']).toBeGreaterThan(0);
      expect(load.servedBy['v4 host2']).toBeGreaterThan(0);
      expect(load.servedBy['v4 host3'] ?? 0).toBe(0);
      expect(Object.values(await serving()).map(release)).toEqual(['v2', 'v2', 'v2', 'v2']);
    });
  });

});
