// A real systemd (PID 1 of fresh PID+mount+network+UTS+IPC namespaces) for tests, booted in about a second.
//
// Safe for the host and for other people's tests, by construction (see MACHINE-NOTES.md, "Real systemd ..."):
// before `exec systemd`, the boot script gives the namespace its own tmpfs on /run, /tmp, /var/tmp and /dev,
// copy-on-write overlays on /etc, /var and /root (upper layers in the namespace's /run: `systemctl enable`,
// StateDirectory= and the like work, and vanish at shutdown), a read-only view of the rest of / (so of the repo)
// and of /sys and /proc/sys, a private tmpfs over /sys/fs/cgroup (the host's hierarchies bound in) and a cgroup
// of its own (so systemd takes that, not the host's root cgroup, as its root: it never moves a host process).
// Only the work dir (and opts.writable) is bound back in, read-write, at its own path. systemd-tmpfiles-setup
// is limited to /run; everything that would touch the host (sysctl, modules, binfmt, timers, clocks, gettys,
// the distro's databases and daemons, /etc updates), and whatever else the host enables, is masked; generators
// do not run. The journal is volatile.
//
// Boots run one at a time (an flock on LOCK_FILE, held from the start of the boot until systemd is up).
// If the test process dies, its namespace dies with it: unshare runs with PR_SET_PDEATHSIG=SIGKILL and
// --kill-child=SIGKILL.
import { spawn as spawnChild, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface ExecResult {
  code: number | null;
  /** the signal that ended the command (null when it exited); 'SIGKILL' after a timeout */
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface ExecOptions {
  env?: Record<string, string>;
  /** default 30 s; on expiry the command's process group is SIGKILLed and the promise resolves (timedOut: true) */
  timeoutMs?: number;
  /** written to the command's stdin (which is then closed) */
  input?: string;
  /** working directory inside (default: the work dir) */
  cwd?: string;
}

export interface SystemdNs {
  /** systemd's host pid */
  pid: number;
  /** run a command inside (nsenter -t pid -a …), with a timeout; resolves { code, stdout, stderr } */
  exec(argv: string[], opts?: ExecOptions): Promise<ExecResult>;
  /**
   * spawn inside (for long-running commands such as the safe-restart CLI, whose events the test reads).
   * The ChildProcess is nsenter's, which does not forward signals: child.kill(sig) signals the command itself
   * (nsenter's child), so it reaches the command inside the namespace and the exit code/signal nsenter relays
   * is the command's. The child leads a process group of its own.
   */
  spawn(argv: string[], opts?: { env?: Record<string, string>; cwd?: string }): ChildProcess;
  /** write a unit file (or a drop-in, "NAME.d/FILE.conf") to /run/systemd/system/NAME inside and `systemctl daemon-reload` */
  writeUnit(name: string, text: string): Promise<void>;
  /** the work dir (visible at the same path inside and outside; holds .systemd-console.log, systemd's /dev/console) */
  dir: string;
  /** poweroff inside, wait for systemd to exit (kill -9 of its pid as the fallback), remove its cgroup; idempotent */
  shutdown(): Promise<void>;
  /** measured: boot = spawn of unshare until `systemctl is-system-running` said running/degraded; shutdown likewise */
  readonly timings: { bootMs: number; shutdownMs: number | null };
  /** the output of `systemctl --failed` when the boot ended degraded, else '' */
  readonly failedAtBoot: string;
}

export interface BootOptions {
  /** the work dir: must exist; bound read-write into the namespace at the same path. Not under /run, /proc, /sys, /dev. */
  dir: string;
  /** more host paths to bind read-write at the same path (everything else outside /tmp, /var/tmp, /run is read-only) */
  writable?: string[];
  /** more units to mask */
  mask?: string[];
  /** default 60 s (includes waiting for the boot lock) */
  bootTimeoutMs?: number;
  /** where boot diagnostics go (default: process.stderr) */
  log?: (line: string) => void;
}

/** The checkout these tests run from: it must be visible inside the namespace (the CLI runs from it there). */
const REPO_ROOT = resolve(import.meta.dirname, '..', '..');

export const LOCK_FILE = '/run/lock/safe-restart-systemd-test.lock';
const SYSTEMD_CANDIDATES = ['/lib/systemd/systemd', '/usr/lib/systemd/systemd'];
const CGROUP_PREFIX = 'sr-systemd-';
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const NEEDED_TOOLS = ['unshare', 'nsenter', 'flock', 'mount', 'mountpoint', 'setpriv', 'sh', 'systemctl'];

/**
 * Units that must not run in a test namespace: each would touch the host (sysctls, kernel modules, binfmt, the
 * clock, /etc, /var/log/wtmp, the host's devices), start a distro daemon on the host's data (mariadb, postgresql,
 * redis, nginx, haproxy, supervisor, ssh), clean temp dirs (tmpfiles-clean) or just slow the boot. Masking a unit
 * that is not installed is harmless.
 */
export const MASKED_UNITS: readonly string[] = [
  // timers (and what they start)
  'timers.target', 'apt-daily.timer', 'apt-daily-upgrade.timer', 'dpkg-db-backup.timer', 'e2scrub_all.timer',
  'fstrim.timer', 'man-db.timer', 'systemd-tmpfiles-clean.timer', 'pg_basebackup@.timer', 'pg_compresswal@.timer',
  'pg_dump@.timer', 'systemd-tmpfiles-clean.service', 'apt-daily.service', 'apt-daily-upgrade.service',
  'dpkg-db-backup.service', 'man-db.service', 'fstrim.service',
  // kernel-global state
  'systemd-sysctl.service', 'procps.service', 'systemd-binfmt.service', 'proc-sys-fs-binfmt_misc.automount',
  'proc-sys-fs-binfmt_misc.mount', 'systemd-modules-load.service', 'kmod-static-nodes.service', 'modprobe@.service',
  'systemd-timesyncd.service', 'systemd-pstore.service', 'dev-hugepages.mount', 'sys-kernel-config.mount',
  'sys-kernel-debug.mount', 'sys-kernel-tracing.mount', 'sys-fs-fuse-connections.mount',
  'systemd-journald-audit.socket',
  // the root file system, its seed and journal
  'systemd-remount-fs.service', 'systemd-random-seed.service', 'systemd-journal-flush.service',
  'systemd-fsck-root.service', 'systemd-quotacheck.service', 'quotaon.service',
  // first boot and "/etc needs update" (/etc/.updated is missing on these machines)
  'systemd-firstboot.service', 'systemd-machine-id-commit.service', 'systemd-sysusers.service', 'ldconfig.service',
  'systemd-hwdb-update.service', 'systemd-journal-catalog-update.service', 'systemd-update-done.service',
  'systemd-update-utmp.service', 'systemd-update-utmp-runlevel.service', 'systemd-repart.service',
  'systemd-pcrphase.service', 'systemd-pcrphase-sysinit.service', 'systemd-pcrphase-initrd.service',
  'systemd-sysext.service', 'systemd-boot-check-no-failures.service',
  // gettys
  'getty.target', 'getty@.service', 'serial-getty@.service', 'console-getty.service', 'container-getty@.service',
  'getty-static.service', 'autovt@.service',
  // daemons installed on these machines (their data lives in the host's /var/lib)
  'ssh.service', 'ssh.socket', 'sshd.service', 'rescue-ssh.target', 'mariadb.service', 'mariadb@.service',
  'mysql.service', 'mysqld.service', 'mariadb.socket', 'mariadb-extra.socket', 'postgresql.service',
  'postgresql@.service', 'redis-server.service', 'redis-server@.service', 'redis.service', 'nginx.service',
  'haproxy.service', 'supervisor.service', 'rsync.service', 'e2scrub_reap.service', 'e2scrub_all.service',
  'e2scrub@.service', 'packagekit.service', 'packagekit-offline-update.service',
  // networking of the host (the namespace has only lo)
  'systemd-networkd.service', 'systemd-networkd.socket', 'systemd-network-generator.service',
  'systemd-networkd-wait-online.service', 'systemd-rfkill.service', 'systemd-rfkill.socket',
];

/** What may start by itself at boot (everything else the host enables is masked: see hostEnabledUnits). */
const ALLOWED_AT_BOOT = new Set([
  'dbus.service', 'dbus.socket', 'dbus-broker.service', 'systemd-journald.service', 'systemd-journald.socket',
  'systemd-journald-dev-log.socket', 'systemd-tmpfiles-setup.service', 'systemd-tmpfiles-setup-dev.service',
  'systemd-logind.service', 'systemd-user-sessions.service', 'systemd-initctl.socket', 'dev-mqueue.mount',
  'systemd-ask-password-console.path', 'systemd-ask-password-wall.path',
]);

/**
 * Units the host enables for the targets a boot reaches (its own *.wants/ and *.requires/ in /etc and the vendor
 * dirs), except ALLOWED_AT_BOOT and targets: so that a machine with more installed (a CI runner: docker, snapd,
 * multipathd …) boots the same minimal system as these machines. Units a test writes and starts itself are unaffected.
 */
function hostEnabledUnits(): string[] {
  const targets = [
    'sysinit.target', 'basic.target', 'sockets.target', 'timers.target', 'paths.target', 'multi-user.target',
    'graphical.target', 'default.target', 'local-fs.target', 'remote-fs.target', 'network.target',
    'network-online.target', 'network-pre.target', 'getty.target', 'nss-lookup.target', 'time-sync.target',
    'time-set.target', 'cryptsetup.target', 'swap.target', 'slices.target',
  ];
  const found = new Set<string>();
  for (const base of ['/etc/systemd/system', '/usr/lib/systemd/system', '/lib/systemd/system', '/usr/local/lib/systemd/system']) {
    for (const t of targets) {
      for (const kind of ['wants', 'requires']) {
        let names: string[] = [];
        try {
          names = readdirSync(join(base, `${t}.${kind}`));
        } catch {
          continue;
        }
        for (const n of names) if (!n.endsWith('.target') && !ALLOWED_AT_BOOT.has(n) && /^[\w@:.\\-]+$/.test(n)) found.add(n);
      }
    }
  }
  return [...found].sort();
}

type CgroupMode = 'hybrid' | 'legacy' | 'unified';

function cgroupMode(): CgroupMode | null {
  if (existsSync('/sys/fs/cgroup/cgroup.controllers')) return 'unified';
  if (existsSync('/sys/fs/cgroup/systemd/cgroup.procs')) {
    return existsSync('/sys/fs/cgroup/unified/cgroup.controllers') ? 'hybrid' : 'legacy';
  }
  return null;
}

/** the hierarchies in which this namespace's cgroup is created and joined */
function cgroupJoinRoots(mode: CgroupMode): string[] {
  if (mode === 'unified') return ['/sys/fs/cgroup'];
  if (mode === 'hybrid') return ['/sys/fs/cgroup/systemd', '/sys/fs/cgroup/unified'];
  return ['/sys/fs/cgroup/systemd'];
}

/** every hierarchy systemd may create cgroups in (for the cleanup) */
function cgroupAllRoots(mode: CgroupMode): string[] {
  if (mode === 'unified') return ['/sys/fs/cgroup'];
  const roots: string[] = [];
  for (const name of readdirSync('/sys/fs/cgroup')) {
    const p = join('/sys/fs/cgroup', name);
    if (existsSync(join(p, 'cgroup.procs'))) roots.push(p);
  }
  return roots;
}

function findTool(name: string): string | undefined {
  for (const d of DEFAULT_PATH.split(':')) {
    const p = join(d, name);
    if (existsSync(p)) return p;
  }
  return undefined;
}

let availability: { ok: true } | { ok: false; why: string } | undefined;

/** Whether bootSystemd() can work here: root, Linux, systemd, util-linux, overlayfs, a writable cgroup hierarchy. */
export function systemdAvailable(): { ok: true } | { ok: false; why: string } {
  if (availability) return availability;
  availability = (() => {
    if (process.platform !== 'linux') return { ok: false, why: `not Linux (${process.platform})` };
    if (process.getuid?.() !== 0) return { ok: false, why: 'not root (unshare/mount/nsenter need root)' };
    if (!SYSTEMD_CANDIDATES.some((p) => existsSync(p))) {
      return { ok: false, why: 'no /lib/systemd/systemd: install the Debian package "systemd"' };
    }
    const missing = NEEDED_TOOLS.filter((t) => !findTool(t));
    if (missing.length) return { ok: false, why: `missing ${missing.join(', ')} (Debian packages util-linux, mount, systemd)` };
    let fs = '';
    try {
      fs = readFileSync('/proc/filesystems', 'utf8');
    } catch {
      return { ok: false, why: 'cannot read /proc/filesystems' };
    }
    if (!/\boverlay\b/.test(fs)) return { ok: false, why: 'the kernel has no overlayfs' };
    const mode = cgroupMode();
    if (!mode) return { ok: false, why: 'no cgroup hierarchy at /sys/fs/cgroup (neither cgroup2 nor name=systemd)' };
    try {
      for (const root of cgroupJoinRoots(mode)) accessSync(root, constants.W_OK); // root: fails only on a read-only mount
    } catch (e) {
      return { ok: false, why: `cgroup hierarchy not writable: ${(e as Error).message}` };
    }
    return { ok: true };
  })();
  return availability;
}

// The script run as PID 1 of the new namespaces, before `exec systemd`. (No "${" in here: this is a JS template.)
// Arguments: the paths to bind read-write (the work dir first). Environment: SR_CGROUP_PROCS (cgroup.procs files
// to join), SR_CG_TMPFS (1: give /sys/fs/cgroup a private tmpfs), SR_MASK (units), SR_SYSTEMD, SR_UNIT_PATH.
export const BOOT_SCRIPT = `set -eu
# 0. our own cgroup, created by the host side: systemd takes it, not the host's root cgroup, as its root
for f in $SR_CGROUP_PROCS; do echo $$ > "$f"; done
# 1. a private /run (systemd keeps an existing /run)
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs /run
mkdir -p /run/.sr /run/systemd/system /run/systemd/journald.conf.d /run/systemd/system.conf.d
# 2. the work dir (and the other writable paths) bound away under the new /run before anything covers them
i=0
for w in "$@"; do i=$((i+1)); mkdir /run/.sr/keep$i; mount --bind "$w" /run/.sr/keep$i; done
# 3. copy-on-write overlays on /etc, /var and /root: writes land in this /run, never on the host
for o in /etc /var /root; do
  [ -d "$o" ] || continue
  mkdir -p "/run/.sr-overlay$o/upper" "/run/.sr-overlay$o/work"
  mount -t overlay overlay -o "lowerdir=$o,upperdir=/run/.sr-overlay$o/upper,workdir=/run/.sr-overlay$o/work" "$o"
done
# 4. private /tmp and /var/tmp (systemd-tmpfiles would wipe the host's), then the kept paths moved back
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /var/tmp
i=0
for w in "$@"; do i=$((i+1)); mkdir -p "$w"; mount --move /run/.sr/keep$i "$w"; done
# the paths after the first SR_WRITABLE ones (the repo and node, when they live under a temp root) stay read-only
i=0
for w in "$@"; do i=$((i+1)); if [ "$i" -gt "$SR_WRITABLE" ]; then mount -o remount,bind,ro "$w"; fi; done
# 5. a private /dev: a few host nodes, our own devpts, shm and console (a file in the work dir)
D=/run/.sr/dev
mkdir $D
mount -t tmpfs -o mode=755,nosuid tmpfs $D
for n in null zero full random urandom tty; do touch $D/$n; mount --bind /dev/$n $D/$n; done
mkdir $D/pts $D/shm $D/mqueue
mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts $D/pts
ln -s pts/ptmx $D/ptmx
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs $D/shm
ln -s /proc/self/fd $D/fd
ln -s /proc/self/fd/0 $D/stdin; ln -s /proc/self/fd/1 $D/stdout; ln -s /proc/self/fd/2 $D/stderr
: > "$1/.systemd-console.log"; touch $D/console; mount --bind "$1/.systemd-console.log" $D/console
mount --move $D /dev
# 6. a private tmpfs over /sys/fs/cgroup (v1/hybrid) with the host hierarchies bound in: systemd's mkdirs
#    and mounts there stay in this namespace
if [ "$SR_CG_TMPFS" = 1 ]; then
  C=/run/.sr/cg
  mkdir $C
  mount -t tmpfs -o mode=755,nosuid,nodev,noexec tmpfs $C
  for h in /sys/fs/cgroup/*; do
    if mountpoint -q "$h"; then n=$(basename "$h"); mkdir "$C/$n"; mount --bind "$h" "$C/$n"; fi
  done
  mount -o remount,ro,nosuid,nodev,noexec tmpfs $C
  mount --move $C /sys/fs/cgroup
fi
# 7. no generators (fstab entries for host disks, SysV scripts, gettys …): empty read-only dirs over theirs
for g in /usr/lib/systemd/system-generators /lib/systemd/system-generators /etc/systemd/system-generators /usr/local/lib/systemd/system-generators; do
  if [ -d "$g" ] && ! mountpoint -q "$g"; then mount -t tmpfs -o ro,mode=755,nosuid,nodev tmpfs "$g"; fi
done
# 8. read-only /sys, /proc/sys, /proc/sysrq-trigger and / (bind remounts: our copies of the mounts only)
mount -o remount,bind,ro /sys
mount --bind /proc/sys /proc/sys
mount -o remount,bind,ro /proc/sys
if [ -e /proc/sysrq-trigger ]; then
  mount --bind /proc/sysrq-trigger /proc/sysrq-trigger; mount -o remount,bind,ro /proc/sysrq-trigger
fi
mount -o remount,bind,ro /
# 9. loopback up (systemd does it too)
if command -v ip >/dev/null 2>&1; then ip link set lo up; fi
# 10. configuration, all in /run
cat > /run/systemd/journald.conf.d/sr-test.conf <<'EOF'
[Journal]
Storage=volatile
ReadKMsg=no
ForwardToConsole=no
ForwardToWall=no
EOF
mkdir -p /run/systemd/system/systemd-tmpfiles-setup.service.d
cat > /run/systemd/system/systemd-tmpfiles-setup.service.d/sr-test.conf <<'EOF'
[Service]
ExecStart=
ExecStart=systemd-tmpfiles --create --remove --boot --exclude-prefix=/dev --exclude-prefix=/tmp --exclude-prefix=/var/tmp --prefix=/run
EOF
if [ -n "$SR_UNIT_PATH" ]; then
  printf '[Manager]\\nDefaultEnvironment="PATH=%s"\\n' "$SR_UNIT_PATH" > /run/systemd/system.conf.d/sr-test.conf
fi
for u in $SR_MASK; do ln -sf /dev/null "/run/systemd/system/$u"; done
rmdir /run/.sr/* /run/.sr
S=$SR_SYSTEMD
unset SR_CGROUP_PROCS SR_CG_TMPFS SR_MASK SR_SYSTEMD SR_UNIT_PATH SR_WRITABLE
echo "sr-boot: exec $S"
exec "$S" --system
`;

function readText(p: string): string | null {
  try {
    return readFileSync(p, 'utf8');
  } catch {
    return null;
  }
}

/** the children of `pid`, by /proc/PID/task/* /children, else by scanning /proc/* /stat */
function childrenOf(pid: number): number[] {
  const out = new Set<number>();
  let viaTasks = false;
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const s = readText(`/proc/${pid}/task/${tid}/children`);
      if (s === null) continue;
      viaTasks = true;
      for (const c of s.trim().split(/\s+/)) if (c) out.add(Number(c));
    }
  } catch {
    return [];
  }
  if (!viaTasks) {
    for (const e of readdirSync('/proc')) {
      if (!/^\d+$/.test(e)) continue;
      const stat = readText(`/proc/${e}/stat`);
      const ppid = stat ? Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) : NaN;
      if (ppid === pid) out.add(Number(e));
    }
  }
  return [...out];
}

function comm(pid: number): string | null {
  return readText(`/proc/${pid}/comm`)?.trim() ?? null;
}

function ppidOf(pid: number): number | null {
  const m = /^PPid:\s+(\d+)/m.exec(readText(`/proc/${pid}/status`) ?? '');
  return m ? Number(m[1]) : null;
}

/** alive and not a zombie (orphans are reaped late here) */
function alive(pid: number): boolean {
  const stat = readText(`/proc/${pid}/stat`);
  if (stat === null) return false;
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
}

function removeCgroupTree(path: string): boolean {
  if (!existsSync(path)) return true;
  for (const e of readdirSync(path, { withFileTypes: true })) {
    if (e.isDirectory()) removeCgroupTree(join(path, e.name));
  }
  try {
    rmdirSync(path);
    return true;
  } catch {
    return false;
  }
}

function cgroupTreeEmpty(path: string): boolean {
  if ((readText(join(path, 'cgroup.procs')) ?? '').trim() !== '') return false;
  for (const e of readdirSync(path, { withFileTypes: true })) {
    if (e.isDirectory() && !cgroupTreeEmpty(join(path, e.name))) return false;
  }
  return true;
}

/** cgroups left by test processes that died before their shutdown() (empty in every hierarchy: no live namespace) */
function removeStaleCgroups(mode: CgroupMode): void {
  const roots = cgroupAllRoots(mode);
  const names = new Set<string>();
  for (const r of roots) for (const n of readdirSync(r)) if (n.startsWith(CGROUP_PREFIX)) names.add(n);
  for (const n of names) {
    const paths = roots.map((r) => join(r, n)).filter((p) => existsSync(p));
    if (paths.every((p) => cgroupTreeEmpty(p))) for (const p of paths) removeCgroupTree(p);
  }
}

interface Lock {
  release(): void;
}

/** an exclusive flock on LOCK_FILE, held by a `flock … cat` child until release() (or until this process dies) */
async function acquireLock(timeoutMs: number): Promise<Lock> {
  mkdirSync(dirname(LOCK_FILE), { recursive: true });
  const child = spawnChild(
    findTool('flock')!,
    ['-x', '-w', String(Math.max(1, Math.ceil(timeoutMs / 1000))), LOCK_FILE, 'sh', '-c', 'echo locked; exec cat >/dev/null'],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('locked')) resolve();
    });
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`could not take the boot lock ${LOCK_FILE} (flock exited ${code}): ${err.trim()}`)));
  });
  return {
    release() {
      child.stdin!.end();
    },
  };
}

function nsenterArgs(pid: number, cwd: string, argv: string[]): string[] {
  return ['-t', String(pid), '-a', `--wd=${cwd}`, '--', ...argv];
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals | number): boolean {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return false;
  try {
    process.kill(-child.pid, signal);
    return true;
  } catch {
    return false;
  }
}

/**
 * Signals what nsenter runs (nsenter's child: nsenter has entered a PID namespace, so it forks, and it does not
 * forward signals). Not nsenter itself: if nsenter died first, the command would be orphaned to the *host's*
 * init (its parent lived outside the namespace), whose late reaping leaves a zombie that holds up systemd's
 * shutdown for its 10 s timeout. Before nsenter has forked, signals nsenter's own process group.
 */
function killInner(child: ChildProcess, signal: NodeJS.Signals | number): boolean {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return false;
  const inner = childrenOf(child.pid).filter((c) => ppidOf(c) === child.pid && alive(c));
  if (inner.length === 0) return killGroup(child, signal);
  let sent = false;
  for (const c of inner) {
    try {
      process.kill(c, signal);
      sent = true;
    } catch {
      /* gone meanwhile */
    }
  }
  return sent;
}

function runInside(pid: number, dir: string, argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  if (argv.length === 0) return Promise.reject(new Error('exec: empty argv'));
  const timeoutMs = opts.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    const child = spawnChild(findTool('nsenter')!, nsenterArgs(pid, opts.cwd ?? dir, argv), {
      env: { ...process.env, ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin!.on('error', () => {});
    child.stdin!.end(opts.input ?? '');
    let last: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      timedOut = true;
      killInner(child, 'SIGKILL');
      last = setTimeout(() => killGroup(child, 'SIGKILL'), 1000); // nsenter still there: its group is still ours
    }, timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    // resolve at exit, giving the pipes a moment to drain (a daemon started by the command may hold them open)
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      clearTimeout(last);
      const done = () => resolve({ code, signal, stdout, stderr, timedOut });
      const grace = setTimeout(() => {
        child.stdout!.destroy();
        child.stderr!.destroy();
        done();
      }, 500);
      child.once('close', () => {
        clearTimeout(grace);
        done();
      });
    });
  });
}

/**
 * Boots systemd in fresh namespaces (see the top of this file) and resolves once `systemctl is-system-running`
 * says running or degraded (degraded: `systemctl --failed` goes to opts.log). Throws when systemdAvailable()
 * is not ok, or when the boot fails or times out (the half-booted namespace is torn down first).
 */
export async function bootSystemd(opts: BootOptions): Promise<SystemdNs> {
  const avail = systemdAvailable();
  if (!avail.ok) throw new Error(`bootSystemd: systemd not available here: ${avail.why}`);
  const log = opts.log ?? ((line: string) => process.stderr.write(`[systemd-ns] ${line}\n`));
  const bootTimeoutMs = opts.bootTimeoutMs ?? 60_000;
  const deadline = Date.now() + bootTimeoutMs;

  const paths = [opts.dir, ...(opts.writable ?? [])].map((p) => {
    if (!isAbsolute(p)) throw new Error(`bootSystemd: not an absolute path: ${p}`);
    const real = realpathSync(p);
    if (!statSync(real).isDirectory()) throw new Error(`bootSystemd: not a directory: ${p}`);
    if (real === '/' || /^\/(run|proc|sys|dev)(\/|$)/.test(real) || /^\/(tmp|var\/tmp)\/?$/.test(real) || /\s/.test(real)) {
      throw new Error(`bootSystemd: cannot bind ${real} into the namespace (under /run, /proc, /sys or /dev, a temp root, or has whitespace)`);
    }
    return real;
  });
  const dir = paths[0]!;
  // a checkout (CI clones anywhere) or node under /tmp or /var/tmp would be hidden by the private temp dirs: bound back, read-only
  const hidden = [REPO_ROOT, dirname(process.execPath)]
    .map((p) => realpathSync(p))
    .filter((p, i, all) => /^\/(tmp|var\/tmp)\//.test(p) && all.indexOf(p) === i && !paths.some((w) => p === w || p.startsWith(`${w}/`)));
  const mode = cgroupMode()!;
  const systemdBin = SYSTEMD_CANDIDATES.find((p) => existsSync(p))!;
  const nodeDir = dirname(process.execPath);
  const unitPath = DEFAULT_PATH.split(':').includes(nodeDir) ? '' : `${nodeDir}:${DEFAULT_PATH}`;

  const lock = await acquireLock(deadline - Date.now());
  const t0 = performance.now();
  const cgName = `${CGROUP_PREFIX}${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  let unshare: ChildProcess | undefined;
  let output = '';
  let unshareExit: Promise<void> = Promise.resolve();
  let pid = 0;
  let unshareDone = false;

  const cleanupCgroups = async () => {
    for (let i = 0; i < 50; i++) {
      if (cgroupAllRoots(mode).every((r) => removeCgroupTree(join(r, cgName)))) return;
      await sleep(50);
    }
    log(`could not remove cgroup ${cgName} (still busy)`);
  };

  const kill9 = async () => {
    // that pid alone, after checking it is still the systemd we started (child of our unshare)
    if (pid && alive(pid) && comm(pid) === 'systemd' && ppidOf(pid) === unshare?.pid) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    if (unshare && !unshareDone) {
      unshare.kill('SIGKILL'); // --kill-child: takes the namespace with it
    }
    await Promise.race([unshareExit, sleep(5000)]);
  };

  try {
    try {
      removeStaleCgroups(mode);
    } catch (e) {
      log(`stale cgroup cleanup: ${(e as Error).message}`);
    }
    const procsFiles = cgroupJoinRoots(mode).map((r) => {
      mkdirSync(join(r, cgName));
      return join(r, cgName, 'cgroup.procs');
    });
    const mask = [...new Set([...MASKED_UNITS, ...hostEnabledUnits(), ...(opts.mask ?? [])])];
    for (const u of mask) if (!/^[\w@:.\\-]+$/.test(u)) throw new Error(`bootSystemd: bad unit name to mask: ${u}`);
    unshare = spawnChild(
      findTool('setpriv')!,
      [
        '--pdeathsig', 'SIGKILL', '--',
        findTool('unshare')!, '--fork', '--pid', '--mount', '--net', '--uts', '--ipc', '--mount-proc',
        '--propagation', 'private', '--kill-child=SIGKILL',
        '/bin/sh', '-c', BOOT_SCRIPT, 'sr-boot', ...paths, ...hidden,
      ],
      {
        env: {
          PATH: DEFAULT_PATH,
          container: 'safe-restart-test',
          SR_CGROUP_PROCS: procsFiles.join(' '),
          SR_CG_TMPFS: mode === 'unified' ? '0' : '1',
          SR_MASK: mask.join(' '),
          SR_SYSTEMD: systemdBin,
          SR_UNIT_PATH: unitPath,
          SR_WRITABLE: String(paths.length),
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const u = unshare;
    u.stdout!.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-20_000)));
    u.stderr!.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-20_000)));
    unshareExit = new Promise<void>((resolve) => {
      u.once('exit', () => {
        unshareDone = true;
        resolve();
      });
      u.once('error', (e) => {
        output += `\nspawn: ${e.message}`;
        unshareDone = true;
        resolve();
      });
    });

    // systemd's host pid: the child of unshare once it has exec'd systemd
    while (!pid) {
      if (unshareDone) throw new Error(`the boot script failed before exec systemd:\n${output}`);
      if (Date.now() > deadline) throw new Error(`systemd did not start within ${bootTimeoutMs} ms:\n${output}`);
      for (const c of childrenOf(u.pid!)) if (comm(c) === 'systemd') pid = c;
      if (!pid) await sleep(10);
    }

    // until PID 1 is up, systemctl fails with "Failed to connect to bus"
    let state = '';
    for (;;) {
      if (unshareDone) throw new Error(`systemd exited during the boot:\n${output}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`systemd did not finish booting within ${bootTimeoutMs} ms (last: ${state})\n${output}`);
      const r = await runInside(pid, dir, ['systemctl', 'is-system-running', '--wait'], { timeoutMs: left });
      state = (r.stdout.trim() || r.stderr.trim()).split('\n').pop() ?? '';
      if (state === 'running' || state === 'degraded') break;
      if (!/Failed to connect to bus|No such file|Transport endpoint|Connection refused|offline|initializing|starting/.test(r.stdout + r.stderr)) {
        throw new Error(`systemctl is-system-running: ${r.stdout}${r.stderr}`);
      }
      await sleep(50);
    }
    let failedAtBoot = '';
    if (state === 'degraded') {
      const f = await runInside(pid, dir, ['systemctl', '--failed', '--no-pager'], { timeoutMs: 10_000 });
      failedAtBoot = f.stdout;
      log(`booted degraded; systemctl --failed:\n${f.stdout}${f.stderr}`);
    }
    const bootMs = performance.now() - t0;
    lock.release();

    let shutdownPromise: Promise<void> | undefined;
    const timings = { bootMs, shutdownMs: null as number | null };
    const systemdPid = pid;
    const ns: SystemdNs = {
      pid: systemdPid,
      dir,
      timings,
      failedAtBoot,
      exec: (argv, o) => runInside(systemdPid, dir, argv, o),
      spawn(argv, o = {}) {
        const child = spawnChild(findTool('nsenter')!, nsenterArgs(systemdPid, o.cwd ?? dir, argv), {
          env: { ...process.env, ...o.env },
          stdio: ['pipe', 'pipe', 'pipe'],
          detached: true,
        });
        child.kill = (signal?: NodeJS.Signals | number) => killInner(child, signal ?? 'SIGTERM');
        return child;
      },
      async writeUnit(name, text) {
        if (!/^[\w@:.\\-]+(\.d\/[\w@:.\\-]+\.conf)?$/.test(name) || name.startsWith('.')) {
          throw new Error(`writeUnit: bad unit name ${JSON.stringify(name)}`);
        }
        // /proc/PID/root is systemd's root: /run there is the namespace's own tmpfs
        const target = `/proc/${systemdPid}/root/run/systemd/system/${name}`;
        mkdirSync(dirname(target), { recursive: true });
        writeFileSync(target, text);
        const r = await runInside(systemdPid, dir, ['systemctl', 'daemon-reload'], { timeoutMs: 30_000 });
        if (r.code !== 0) throw new Error(`systemctl daemon-reload failed (${r.code}): ${r.stderr}`);
      },
      shutdown() {
        shutdownPromise ??= (async () => {
          const t = performance.now();
          if (!unshareDone) {
            // exits non-zero at times ("Connection reset by peer": the system went down before logind replied)
            const r = await runInside(systemdPid, dir, ['systemctl', 'poweroff'], { timeoutMs: 10_000 }).catch((e: Error) => e);
            await Promise.race([unshareExit, sleep(15_000)]);
            if (!unshareDone) {
              log(`systemctl poweroff did not end systemd within 15 s (${r instanceof Error ? r.message : r.stderr.trim()}): kill -9 ${systemdPid}`);
              await kill9();
            }
          }
          timings.shutdownMs = performance.now() - t;
          await cleanupCgroups();
        })();
        return shutdownPromise;
      },
    };
    return ns;
  } catch (e) {
    await kill9();
    await cleanupCgroups();
    lock.release();
    throw e;
  }
}
