// Shared by the fault, kill -9 and randomized-sequence suites: a fast sandbox, the leak checks
// (processes by environment marker, the CLI's fds at exit) and journal assertions.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, MARKER_VAR, Sandbox, type CliResult, type ReleaseFlags } from '../support/sandbox.js';
import { digestJournal, readJournal, type JournalDigest } from '../../src/runner/journal.js';

export type Releases = Record<string, ReleaseFlags | { fault: 'slow-loris' | 'reset' }>;

/** Fast timings: interval 20ms, warm-up 50ms, grace 1s, gates 3s. */
export async function fastSandbox(releases: Releases, current: string | null = 'v1'): Promise<Sandbox> {
  const plain: Record<string, ReleaseFlags> = {};
  for (const [id, flags] of Object.entries(releases)) if (!('fault' in flags)) plain[id] = flags;
  const s = await Sandbox.create(plain, current ?? undefined);
  for (const [id, flags] of Object.entries(releases)) if ('fault' in flags) s.addFaultRelease(id, flags.fault);
  await s.startDependency();
  return s;
}

export type RecipeParts = Parameters<Sandbox['recipe']>[0];

export function fastParts(s: Sandbox, over: RecipeParts = {}): RecipeParts {
  return {
    dependencies: `  - name: fake-db\n    tcp: 127.0.0.1:${s.depPort}\n    interval: 20ms\n    timeout: 1s`,
    stop: `  signal: SIGTERM\n  pidfile: ${s.pidfile}\n  grace: 1s`,
    start: `  spawn: ["${process.execPath}", "server.mjs"]\n  cwd: ${s.dir}/current\n  pidfile: ${s.pidfile}\n  log: ${s.dir}/log/svc.log\n  env:\n    PORT: "${s.port}"\n    WARMUP_MS: "50"`,
    gates: `  - name: healthz\n    http: http://127.0.0.1:${s.port}/healthz\n    interval: 20ms\n    success_threshold: 2\n    timeout: 3s`,
    ...over,
  };
}

/** What answers on the service port: its release and pid, or null. */
export async function serving(s: Sandbox): Promise<{ release: string; pid: number } | null> {
  const h = await s.health();
  const m = h?.status === 200 ? /^ok (\S+) (\d+)/.exec(h.body) : null;
  return m ? { release: m[1] as string, pid: Number(m[2]) } : null;
}

/** Live marked processes that are not the service (the one answering, or the one its pidfile names, with its group). */
export async function leakedProcesses(s: Sandbox): Promise<number[]> {
  const services = [(await serving(s))?.pid ?? null, s.pid()].filter((p): p is number => p !== null);
  const groups = new Set(services.map(pgidOf).filter((g) => services.includes(g)));
  return s.processesMarked().filter((p) => !services.includes(p) && !groups.has(pgidOf(p)));
}

export function pgidOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
  } catch {
    return -1;
  }
}

/** Sockets, pipes and files the CLI still held at exit that it did not hold at start (from the fd probe). */
export function leakedFds(reportPath: string): string[] {
  const report = JSON.parse(readFileSync(reportPath, 'utf8')) as { atStart: Record<string, string>; atExit: Record<string, string> };
  const before = new Set(Object.values(report.atStart));
  return Object.entries(report.atExit)
    .filter(([, target]) => !before.has(target) && target !== '/dev/null' && !target.startsWith('anon_inode:'))
    .map(([fd, target]) => `fd ${fd} -> ${target}`);
}

export function fdReportPath(s: Sandbox, label = 'cli'): string {
  return join(s.dir, `fds-${label}-${Date.now()}.json`);
}

/** Records of every journal, and their shapes as "type:phase[:action]". */
export function journalsOf(s: Sandbox): Array<Array<Record<string, unknown>>> {
  return s.journals();
}

export function shape(records: Array<Record<string, unknown>>): string[] {
  return records.map((r) => {
    if (r.type === 'intent' || r.type === 'done' || r.type === 'child') return `${r.type}:${r.phase}:${r.action}`;
    if (r.type === 'phase') return `phase:${r.phase}:${r.status}`;
    return String(r.type);
  });
}

export function digests(s: Sandbox): JournalDigest[] {
  return s.journalFiles().map((f) => digestJournal(readJournal(f)));
}

/**
 * The invariants every journal keeps: a run header first, seq strictly increasing, every done preceded
 * by its intent, and, when the run finished, every intent closed and a summary last.
 */
export function journalProblems(records: Array<Record<string, unknown>>): string[] {
  const problems: string[] = [];
  if (records[0]?.type !== 'run') problems.push(`first record is ${String(records[0]?.type)}, not run`);
  const own = records.filter((r) => r.type !== 'recovered');
  for (let i = 1; i < own.length; i++) if ((own[i]?.seq as number) <= (own[i - 1]?.seq as number)) problems.push(`seq not increasing at ${i}`);
  const open = new Map<string, number>();
  for (const r of own) {
    const key = `${r.phase}/${r.action}`;
    if (r.type === 'intent') open.set(key, (open.get(key) ?? 0) + 1);
    if (r.type === 'done') {
      if (!open.get(key)) problems.push(`done ${key} without an intent`);
      else open.set(key, (open.get(key) as number) - 1);
    }
  }
  const finished = own.some((r) => r.type === 'summary');
  if (finished) {
    if (own.at(-1)?.type !== 'summary') problems.push('summary is not the last record');
    for (const [key, n] of open) if (n > 0) problems.push(`intent ${key} never done`);
  }
  return problems;
}

export function summaryOf(r: CliResult): { outcome: string; exitCode: number; description: string; previousRelease: string | null; targetRelease: string | null; evidence?: string; warnings: string[]; leftState?: string[] } {
  const e = r.events.find((x) => x.event === 'summary') as { summary: ReturnType<typeof summaryOf> } | undefined;
  if (!e) throw new Error(`no summary; exit ${r.code}; stderr:\n${r.stderr}\nstdout tail:\n${r.stdout.slice(-2000)}`);
  return e.summary;
}

/** A self-signed certificate for 127.0.0.1 made with openssl into dir: { key, cert } file paths. */
export function selfSignedCert(dir: string): { key: string; cert: string } {
  const key = join(dir, 'tls.key');
  const cert = join(dir, 'tls.crt');
  if (!existsSync(cert)) {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  }
  return { key, cert };
}

/** Kill every marked process by group (the CLI, the service, anything left), then remove the sandbox. */
export async function teardown(s: Sandbox | null): Promise<void> {
  if (!s) return;
  const marked = s.processesMarked();
  for (const pid of marked) {
    // a group only when its leader is ours too: the CLI shares the test runner's group
    const group = pgidOf(pid);
    try {
      process.kill(group > 1 && marked.includes(group) ? -group : pid, 'SIGKILL');
    } catch {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
  const deadline = Date.now() + 5_000;
  while (s.processesMarked().length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  await s.cleanup();
}

/** Resolve with the CLI's result, or fail after ms (the CLI must never hang). */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms}ms`)), ms)))]).finally(() => clearTimeout(timer));
}

/** The CLI without the --state-dir/--json that Sandbox.start adds (for check, plan, validate). */
export function cliPlain(s: Sandbox, args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolveRun) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: s.dir, env: { ...process.env, [MARKER_VAR]: s.marker, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('close', (code) => resolveRun({ code, stdout, stderr }));
  });
}
