// The systemd test harness itself: boots a real systemd in namespaces, runs a Type=simple unit (a node HTTP
// server inside the namespace's own network), reads its journal, stops it, powers off; and proves the host's
// /tmp and /var/tmp (where other people's tests live) survive the whole boot and teardown.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootSystemd, systemdAvailable, type SystemdNs } from '../support/systemd.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const avail = systemdAvailable();
const underCi = process.env.CI === 'true';
if (!avail.ok) {
  console.warn(`systemd harness tests ${underCi ? 'FAIL under CI=true' : 'skipped'}: ${avail.why}`);
}

const UNIT = 'sr-harness-web.service';
const PORT = 20_000 + Math.floor(Math.random() * 20_000); // the namespace has a network of its own: any port is free

const SERVER = `import http from 'node:http';
const port = Number(process.env.PORT);
http
  .createServer((req, res) => {
    console.log('request ' + req.method + ' ' + req.url);
    res.end('pid=' + process.pid + '\\n');
  })
  .listen(port, '127.0.0.1', () => console.log('listening on 127.0.0.1:' + port));
process.on('SIGTERM', () => {
  console.log('SIGTERM: bye');
  process.exit(0);
});
`;

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

function parseShow(text: string): Record<string, string> {
  return Object.fromEntries(
    text
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
}

describe.skipIf(!avail.ok && !underCi)('systemd test harness (real systemd 252 in namespaces)', () => {
  let ns: SystemdNs | undefined;
  let dir = '';
  const canaryName = `sr-canary-${randomBytes(8).toString('hex')}`;
  const canaries = [join('/tmp', canaryName), join('/var/tmp', canaryName)];
  const canaryText = `canary ${canaryName}\n`;

  beforeAll(async () => {
    if (!avail.ok) throw new Error(`systemd is required under CI=true: ${avail.why}`);
    for (const c of canaries) writeFileSync(c, canaryText); // before the first boot
    dir = mkdtempSync(join(tmpdir(), 'sr-systemd-'));
    writeFileSync(join(dir, 'server.mjs'), SERVER);
    writeFileSync(join(dir, 'from-host.txt'), 'written on the host\n');
    ns = await bootSystemd({ dir });
    console.log(`systemd booted in ${ns.timings.bootMs.toFixed(0)} ms (host pid ${ns.pid})`);
  }, 60_000);

  afterAll(async () => {
    try {
      await ns?.shutdown();
      if (ns?.timings.shutdownMs != null) console.log(`systemd torn down in ${ns.timings.shutdownMs.toFixed(0)} ms`);
    } finally {
      const lost = canaries.filter((c) => !existsSync(c));
      for (const c of canaries) rmSync(c, { force: true });
      if (dir) rmSync(dir, { recursive: true, force: true });
      if (lost.length) throw new Error(`HOST CANARY LOST: ${lost.join(', ')} – the namespace touched the host's temp dirs`);
    }
  }, 60_000);

  it('is PID 1 of its own namespaces and boots clean, with the host /tmp untouched', async () => {
    const s = ns!;
    expect(readFileSync(`/proc/${s.pid}/comm`, 'utf8').trim()).toBe('systemd');
    expect((await s.exec(['systemctl', 'is-system-running'])).stdout.trim()).toBe('running');
    expect(s.failedAtBoot).toBe('');
    // nothing the host enables (databases, sshd, timers …) came up, and no generator ran
    const units = await s.exec(['systemctl', 'list-units', '--no-legend', '--plain', '--state=active', '--type=service']);
    const expected = [
      'dbus.service', 'systemd-journald.service', 'systemd-logind.service', 'systemd-tmpfiles-setup-dev.service',
      'systemd-tmpfiles-setup.service', 'systemd-user-sessions.service',
    ];
    const active = units.stdout.split('\n').map((l) => l.split(' ')[0] ?? '').filter(Boolean);
    expect(active.filter((u) => !expected.includes(u))).toEqual([]);
    expect(active).toContain('systemd-journald.service');
    const gen = await s.exec(['sh', '-c', 'ls -A /run/systemd/generator /run/systemd/generator.late 2>/dev/null']);
    expect(gen.stdout.trim()).toBe('');
    expect((await s.exec(['sh', '-c', 'echo $$; cat /proc/1/comm'])).stdout.split('\n')[1]).toBe('systemd');
    // the host's canaries survived the boot (systemd-tmpfiles-setup ran inside)
    for (const c of canaries) expect(readFileSync(c, 'utf8')).toBe(canaryText);
    // inside, /tmp is a tmpfs of its own: the canary is not there, the work dir is
    const inside = await s.exec(['sh', '-c', `ls -a /tmp; test -e /tmp/${canaryName} && echo CANARY-VISIBLE; findmnt -no FSTYPE /tmp`]);
    expect(inside.stdout).not.toContain('CANARY-VISIBLE');
    expect(inside.stdout).toContain('tmpfs');
  });

  it('shares the work dir both ways, sees the repo and node, keeps the host read-only', async () => {
    const s = ns!;
    const r = await s.exec(['sh', '-c', `cat ${s.dir}/from-host.txt; echo inside > ${s.dir}/from-ns.txt; test -r ${ROOT}/package.json && echo repo-readable`]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('written on the host');
    expect(r.stdout).toContain('repo-readable');
    expect(readFileSync(join(s.dir, 'from-ns.txt'), 'utf8')).toBe('inside\n');
    const node = await s.exec([process.execPath, '-e', 'console.log(process.version)']);
    expect(node.stdout.trim()).toBe(process.version);
    // the repo is read-only inside; /etc and /var are copy-on-write: a write there never reaches the host
    const probe = `sr-harness-probe-${randomBytes(4).toString('hex')}`;
    const w = await s.exec(['sh', '-c', `touch ${ROOT}/${probe} 2>&1; touch /etc/${probe} /var/lib/${probe} && echo cow-ok`]);
    expect(w.stdout).toMatch(/Read-only file system/);
    expect(w.stdout).toContain('cow-ok');
    for (const p of [join(ROOT, probe), `/etc/${probe}`, `/var/lib/${probe}`]) expect(existsSync(p)).toBe(false);
    // only lo, and it is up
    const lo = await s.exec(['sh', '-c', 'ls /sys/class/net; cat /proc/net/dev | tail -n +3 | cut -d: -f1']);
    expect(lo.stdout.split(/\s+/).filter(Boolean)).toEqual(expect.arrayContaining(['lo']));
    const up = await s.exec(['ip', '-o', 'link', 'show', 'lo']);
    expect(up.stdout).toMatch(/[<,]UP[,>]/);
  });

  it('runs a Type=simple unit (ExecStart=/usr/bin/env node …): active, MainPID, InvocationID, journal', async () => {
    const s = ns!;
    await s.writeUnit(
      UNIT,
      [
        '[Unit]',
        'Description=safe-restart harness test web server',
        '[Service]',
        'Type=simple',
        `Environment=PORT=${PORT}`,
        `ExecStart=/usr/bin/env node ${s.dir}/server.mjs`,
        '',
      ].join('\n'),
    );
    const start = await s.exec(['systemctl', 'start', UNIT]);
    expect(start.code, start.stderr).toBe(0);
    expect((await s.exec(['systemctl', 'is-active', UNIT])).stdout.trim()).toBe('active');

    // the test process is outside the network namespace: probe from inside
    const body = await until('the server to answer', async () => {
      const r = await s.exec(['curl', '-sS', '--max-time', '2', `http://127.0.0.1:${PORT}/hello`], { timeoutMs: 5000 });
      return r.code === 0 ? r.stdout : undefined;
    });
    const show = parseShow((await s.exec(['systemctl', 'show', '-p', 'MainPID,ActiveState,SubState,InvocationID', UNIT])).stdout);
    expect(show.ActiveState).toBe('active');
    expect(show.SubState).toBe('running');
    expect(show.InvocationID).toMatch(/^[0-9a-f]{32}$/);
    const mainPid = Number(show.MainPID);
    expect(mainPid).toBeGreaterThan(1);
    expect(body.trim()).toBe(`pid=${mainPid}`); // namespace pids on both sides
    // node's fetch from inside works as well
    const viaNode = await s.exec([process.execPath, '-e', `fetch('http://127.0.0.1:${PORT}/n').then(r => r.text()).then(t => process.stdout.write(t))`]);
    expect(viaNode.stdout.trim()).toBe(`pid=${mainPid}`);

    const journal = await until('the journal to show the output', async () => {
      const r = await s.exec(['journalctl', '-u', UNIT, '-o', 'cat', '--no-pager']);
      return r.stdout.includes('request GET /hello') ? r.stdout : undefined;
    });
    expect(journal).toContain(`listening on 127.0.0.1:${PORT}`);
    const byInvocation = await s.exec(['journalctl', `_SYSTEMD_INVOCATION_ID=${show.InvocationID}`, '-o', 'cat', '--no-pager']);
    expect(byInvocation.stdout).toContain('listening on');

    const stop = await s.exec(['systemctl', 'stop', UNIT]);
    expect(stop.code, stop.stderr).toBe(0);
    const after = await s.exec(['systemctl', 'is-active', UNIT]);
    expect(after.stdout.trim()).toBe('inactive');
    expect(after.code).not.toBe(0);
    expect((await s.exec(['curl', '-sS', '--max-time', '2', `http://127.0.0.1:${PORT}/`])).code).not.toBe(0);
    const final = await until('SIGTERM in the journal', async () => {
      const r = await s.exec(['journalctl', '-u', UNIT, '-o', 'cat', '--no-pager']);
      return r.stdout.includes('SIGTERM: bye') ? r.stdout : undefined;
    });
    expect(final).toContain('SIGTERM: bye');
  });

  it('exec: timeouts and stdin; spawn: streams output and child.kill() reaches the command inside', async () => {
    const s = ns!;
    const t = await s.exec(['sleep', '30'], { timeoutMs: 300 });
    expect(t.timedOut).toBe(true);
    expect(t.code).toBe(null);
    expect(t.signal).toBe('SIGKILL');
    // the timeout killed the command, not nsenter first: no orphan left to the host's (late) reaper as a zombie
    const ps = await s.exec(['ps', '-eo', 'stat=,args=']);
    expect(ps.stdout.split('\n').filter((l) => l.startsWith('Z'))).toEqual([]);
    const cat = await s.exec(['cat'], { input: 'via stdin' });
    expect(cat.stdout).toBe('via stdin');
    const env = await s.exec(['sh', '-c', 'echo "$SR_X"'], { env: { SR_X: 'passed' } });
    expect(env.stdout.trim()).toBe('passed');

    const child = s.spawn(['sh', '-c', 'trap "echo got-term; exit 7" TERM; echo ready $$; while :; do sleep 0.1; done']);
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
    const innerPid = await until('ready', async () => /ready (\d+)/.exec(out)?.[1]);
    expect(child.kill('SIGTERM')).toBe(true);
    expect(await exited).toBe(7);
    expect(out).toContain('got-term');
    const gone = await s.exec(['sh', '-c', `kill -0 ${innerPid} 2>/dev/null && echo alive || echo gone`]);
    expect(gone.stdout.trim()).toBe('gone');
  });

  it('teardown: poweroff ends systemd; the host canaries in /tmp and /var/tmp survived', async () => {
    const s = ns!;
    await s.shutdown();
    let stat = '';
    try {
      stat = readFileSync(`/proc/${s.pid}/stat`, 'utf8');
    } catch {
      /* gone */
    }
    expect(stat === '' || /\) Z /.test(stat)).toBe(true); // exited (or a zombie not yet reaped)
    console.log(`systemd boot ${s.timings.bootMs.toFixed(0)} ms, teardown ${s.timings.shutdownMs?.toFixed(0)} ms`);
    for (const c of canaries) expect(readFileSync(c, 'utf8')).toBe(canaryText);
    expect(readFileSync(join(s.dir, 'from-ns.txt'), 'utf8')).toBe('inside\n'); // the work dir outlives the namespace
  });
});
