// 8. Ansible's overhead per host: ansible/playbooks/rollout.yml rolls v1 → v2 (then back) across 4 "hosts" — one
// sshd per loopback address, 127.0.0.21–24 (not the tests' .11–.14, so a test run and a bench run do not fight
// over port 22) — each with its own bench service and recipe. Per host, from the fleet report: the safe_restart
// task's wall time on the controller (task_ms) − the run's own duration from its summary (duration_ms) = what
// Ansible and the module add (connection, module transfer, Python start, the module's `plan` and `status`
// calls). Also: a re-run of the same release (every host already current: what skipping a host costs), the whole
// playbook's wall time per host, and the same restart over plain `ssh HOST safe-restart run` (a fresh
// connection each) for comparison. Needs ansible-core, openssh-server and root (sshd on port 22); skipped
// with a message otherwise.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { createProduction, parseEvents, startCurrent } from '../lib/production.mjs';
import { openTcpPort } from '../lib/targets.mjs';
import { NODE, ROOT, SR, killGroup, removeDir, run, sleep, summarize, tempDir } from '../lib/util.mjs';

const SSHD = '/usr/sbin/sshd';
const HOSTS = [1, 2, 3, 4].map((i) => ({ name: `host${i}`, ip: `127.0.0.2${i}` }));
const ANSIBLE = join(ROOT, 'ansible');
const WARMUP_MS = 100;

function which(bin) {
  try {
    execFileSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function missing() {
  return [
    ...['ansible-playbook', 'ssh', 'ssh-keygen', 'python3'].filter((b) => !which(b)),
    ...(existsSync(SSHD) ? [] : [SSHD]),
    ...(process.getuid?.() === 0 ? [] : ['root (sshd on port 22)']),
  ];
}

function connects(host, port) {
  return new Promise((res) => {
    const s = connect({ host, port });
    s.once('connect', () => (s.destroy(), res(true)));
    s.once('error', () => res(false));
  });
}

async function startSshd(dir, h) {
  const sshd = run(SSHD, ['-D', '-e', '-f', join(dir, 'ssh', `${h.name}.conf`)], { timeoutMs: 3_600_000 });
  const deadline = Date.now() + 10_000;
  while (!(await connects(h.ip, 22))) {
    if (sshd.child.exitCode !== null || Date.now() > deadline) throw new Error(`ansible bench: sshd on ${h.ip}:22 did not start (exit ${sshd.child.exitCode})`);
    await sleep(20);
  }
  return sshd;
}

function writeFleet(dir, productions) {
  const ssh = join(dir, 'ssh');
  mkdirSync(ssh);
  const keygen = (file, comment) => execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file]);
  keygen(join(ssh, 'client'), 'controller');
  const known = [];
  const inventory = ['[fleet]'];
  HOSTS.forEach((h, i) => {
    keygen(join(ssh, h.name), h.name);
    known.push(`${h.ip} ${readFileSync(join(ssh, `${h.name}.pub`), 'utf8').split(' ').slice(0, 2).join(' ')}`);
    writeFileSync(join(ssh, `${h.name}.conf`), [
      `ListenAddress ${h.ip}:22`, `HostKey ${join(ssh, h.name)}`, `PidFile ${join(ssh, `${h.name}.pid`)}`,
      `AuthorizedKeysFile ${join(ssh, 'client.pub')}`, 'PermitRootLogin prohibit-password', 'PasswordAuthentication no',
      'KbdInteractiveAuthentication no', 'StrictModes no', 'UsePAM no', 'PrintMotd no', 'MaxStartups 100',
      'Subsystem sftp internal-sftp', '',
    ].join('\n'));
    const p = productions[i];
    inventory.push(`${h.name} ansible_host=${h.ip} safe_restart_recipe=${p.recipe} safe_restart_state_dir=${p.stateDir}`);
  });
  writeFileSync(join(ssh, 'known_hosts'), `${known.join('\n')}\n`);
  // the snapshot of the build this bench run measures (util.snapshotBuild)
  const binary = join(dir, 'safe-restart');
  writeFileSync(binary, `#!/bin/sh\nexec ${NODE} ${SR} "$@"\n`);
  chmodSync(binary, 0o755);
  const sshArgs = ['-i', join(ssh, 'client'), '-o', `UserKnownHostsFile=${join(ssh, 'known_hosts')}`, '-o', 'StrictHostKeyChecking=yes'];
  inventory.push('', '[fleet:vars]', 'ansible_user=root', 'ansible_python_interpreter=/usr/bin/python3',
    `ansible_ssh_private_key_file=${join(ssh, 'client')}`,
    `ansible_ssh_common_args="-o UserKnownHostsFile=${join(ssh, 'known_hosts')} -o StrictHostKeyChecking=yes"`,
    `safe_restart_binary=${binary}`, '');
  writeFileSync(join(dir, 'inventory'), inventory.join('\n'));
  return { binary, sshArgs };
}

async function playbook(dir, n, release) {
  const report = join(dir, `report-${n}.json`);
  // a fresh control path per playbook: every rollout pays its own connection set-up, as a deploy job does
  const cp = join(dir, `cp-${n}`);
  mkdirSync(cp);
  const r = await run('ansible-playbook', ['-i', join(dir, 'inventory'), join(ANSIBLE, 'playbooks', 'rollout.yml'),
    '-e', JSON.stringify({ safe_restart_release: release, safe_restart_report: report })], {
    cwd: ANSIBLE,
    capture: true,
    timeoutMs: 300_000,
    env: {
      ANSIBLE_CONFIG: join(ANSIBLE, 'ansible.cfg'),
      ANSIBLE_COLLECTIONS_PATH: join(ANSIBLE, 'collections'),
      ANSIBLE_SSH_CONTROL_PATH_DIR: cp,
      ANSIBLE_LOCAL_TEMP: join(dir, 'ansible-local'),
      ANSIBLE_REMOTE_TEMP: join(dir, 'ansible-remote'),
      ANSIBLE_NOCOLOR: '1',
      ANSIBLE_HOST_KEY_CHECKING: 'True',
    },
  }).done;
  // the ControlPersist masters would keep their sessions (and the sshd) alive for another 60 s
  for (const socket of readdirSync(cp)) await run('ssh', ['-o', `ControlPath=${join(cp, socket)}`, '-O', 'exit', 'controlmaster'], { timeoutMs: 5_000 }).done;
  const parsed = existsSync(report) ? JSON.parse(readFileSync(report, 'utf8')) : null;
  if (r.code !== 0 || !parsed) throw new Error(`ansible bench: rollout to ${release} exited ${r.code}:\n${r.stdout.slice(-3000)}${r.stderr}`);
  return { wallMs: r.wallMs, report: parsed };
}

async function overSsh(sshArgs, h, p, release) {
  const r = await run('ssh', [...sshArgs, '-o', 'ControlMaster=no', '-o', 'ControlPath=none', `root@${h.ip}`,
    NODE, SR, 'run', p.recipe, '--release', release, '--state-dir', p.stateDir, '--json'], { capture: true, timeoutMs: 120_000 }).done;
  const summary = parseEvents(r.stdout).find((e) => e.event === 'summary')?.summary;
  if (r.code !== 0 || !summary) throw new Error(`ansible bench: ssh ${h.ip} safe-restart run exited ${r.code}: ${r.stderr}`);
  return { wallMs: r.wallMs, durationMs: summary.durationMs };
}

export async function ansible({ trials, log }) {
  const lacking = missing();
  if (lacking.length) {
    const skipped = `needs ${lacking.join(', ')} (apt-get install -y ansible-core openssh-server; run as root)`;
    log(`ansible: skipped – ${skipped}`);
    return { skipped, rows: [], samples: [] };
  }
  const dir = tempDir('ansible');
  const dep = await openTcpPort();
  const productions = [];
  const sshds = [];
  const samples = [];
  try {
    for (const h of HOSTS) productions.push(await createProduction(`ansible-${h.name}`, { depPort: dep.port, warmupMs: WARMUP_MS }));
    mkdirSync('/run/sshd', { recursive: true });
    const { sshArgs } = writeFleet(dir, productions);
    for (const h of HOSTS) sshds.push(await startSshd(dir, h));
    for (const p of productions) await startCurrent(p);
    let n = 0;
    for (let t = 1; t <= trials; t++) {
      // v1 → v2 through Ansible, the same again (every host already current), then v2 → v1 over plain ssh
      const rollout = await playbook(dir, ++n, 'v2');
      const again = await playbook(dir, ++n, 'v2');
      const ssh = [];
      for (const [i, h] of HOSTS.entries()) ssh.push(await overSsh(sshArgs, h, productions[i], 'v1'));
      const hosts = rollout.report.hosts;
      if (hosts.some((h) => h.status !== 'succeeded') || again.report.hosts.some((h) => h.status !== 'already_current')) {
        throw new Error(`ansible bench: unexpected statuses ${JSON.stringify([hosts.map((h) => h.status), again.report.hosts.map((h) => h.status)])}`);
      }
      samples.push({
        trial: t,
        playbookWallMs: Math.round(rollout.wallMs),
        rerunWallMs: Math.round(again.wallMs),
        hosts: hosts.map((h, i) => ({
          host: h.host,
          taskMs: h.task_ms,
          durationMs: h.duration_ms,
          overheadMs: h.task_ms - h.duration_ms,
          alreadyCurrentTaskMs: again.report.hosts[i].task_ms,
          sshWallMs: Math.round(ssh[i].wallMs),
          sshDurationMs: ssh[i].durationMs,
          sshOverheadMs: Math.round(ssh[i].wallMs - ssh[i].durationMs),
        })),
      });
      log(`ansible: trial ${t}/${trials} done`);
    }
  } finally {
    for (const s of sshds) killGroup(s.pid, 'SIGTERM');
    await Promise.all(sshds.map((s) => s.done));
    for (const p of productions) await removeDir(p.dir);
    await dep.close();
    await removeDir(dir);
  }
  const per = (key) => summarize(samples.flatMap((s) => s.hosts.map((h) => h[key])));
  const row = {
    hosts: HOSTS.length,
    trials: samples.length,
    version: (() => {
      try {
        return execFileSync('ansible-playbook', ['--version'], { encoding: 'utf8' }).split('\n')[0];
      } catch {
        return null;
      }
    })(),
    taskMs: per('taskMs'),
    durationMs: per('durationMs'),
    overheadMs: per('overheadMs'),
    alreadyCurrentTaskMs: per('alreadyCurrentTaskMs'),
    playbookWallPerHostMs: summarize(samples.map((s) => s.playbookWallMs / HOSTS.length)),
    rerunWallPerHostMs: summarize(samples.map((s) => s.rerunWallMs / HOSTS.length)),
    sshWallMs: per('sshWallMs'),
    sshOverheadMs: per('sshOverheadMs'),
  };
  const mp = (s) => (s.n ? `${Math.round(s.median)} (${Math.round(s.p90)})` : '—');
  // bench/lib/report.mjs has no block for this suite: its summary goes to the log
  log([
    `ansible: ${row.version ?? 'ansible-playbook'}, ${HOSTS.length} hosts × ${samples.length} trials, ms median (p90) per host:`,
    `  rollout task wall ${mp(row.taskMs)} · the run's own duration ${mp(row.durationMs)} · Ansible's overhead (task − run) ${mp(row.overheadMs)}`,
    `  already-current host (re-run) task wall ${mp(row.alreadyCurrentTaskMs)} · whole playbook per host ${mp(row.playbookWallPerHostMs)} (re-run ${mp(row.rerunWallPerHostMs)})`,
    `  plain ssh: wall ${mp(row.sshWallMs)} · wall − the run's duration ${mp(row.sshOverheadMs)}`,
  ].join('\n'));
  return { rows: [row], samples };
}
