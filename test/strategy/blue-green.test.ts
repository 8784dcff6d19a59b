// blue/green and rolling through the real CLI, behind a real HAProxy (and nginx), under ~200 req/s of our own
// bounded load on loopback, counting every failed request by kind. Zero failed requests is the claim.
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort } from '../support/sandbox.js';
import { startNginx } from '../support/lb.js';
import { startLoad } from '../support/load.js';
import { HAVE_HAPROXY, HAVE_NGINX, alive, bgRecipe, blueGreenWorld, phaseOf, journalSoFar, killWhenJournal, openIntents, rollingWorld, slotPid, startSlot, strategySandbox, summary, underCi, underLoad, writeStrategyRecipe, zeroFailed } from './world.js';

if (!HAVE_HAPROXY || !HAVE_NGINX) console.warn(`strategy tests ${underCi ? 'FAIL under CI=true' : 'partly skipped'}: install Debian's haproxy and nginx`);

const setup = strategySandbox();
const world = (releases?: Parameters<typeof setup>[0]) => blueGreenWorld(setup, releases);

describe.skipIf(!HAVE_HAPROXY && !underCi)('blue/green behind HAProxy, under load', () => {
  it('v1 → v2: exit 0, 0 failed requests, green serves v2, blue retired', async () => {
    const { s, blue, green, bluePid, lb, front } = await world();
    const { r, load } = await underLoad(s, front, ['run', bgRecipe(s, lb, blue, green), '--release', 'v2']);
    expect(r.code, r.stderr + r.stdout.slice(-2000)).toBe(0);
    zeroFailed(load);
    expect(load.servedBy.v2).toBeGreaterThan(0);
    expect(alive(bluePid)).toBe(false);
    expect(s.currentRelease()).toBe('v2');
    const stat = await lb.command('show servers state');
    expect(stat).toMatch(/green/);
    expect(readFileSync(lb.stateFile as string, 'utf8')).toMatch(/green/);
  });

  it('a target that fails its gates before the switch: exit 2, 0 failed, blue untouched (same pid)', async () => {
    const { s, blue, green, bluePid, lb, front } = await world({ v1: {}, v2: {}, v3: { broken: true } });
    const { r, load } = await underLoad(s, front, ['run', bgRecipe(s, lb, blue, green), '--release', 'v3']);
    expect(r.code, r.stderr + r.stdout.slice(-2000)).toBe(2);
    zeroFailed(load);
    expect(slotPid(s, 'blue')).toBe(bluePid);
    expect(alive(bluePid)).toBe(true);
    expect(load.servedBy.v3 ?? 0).toBe(0);
    expect(phaseOf(r, 'switch')).toBeUndefined();
  });

  it('a target that fails during bake: switched back at once, exit 2, 0 failed, the switch-back time reported', async () => {
    const { s, blue, green, bluePid, lb, front } = await world({ v1: {}, v2: {}, v4: { failAfterMs: 1500 } });
    const { r, load } = await underLoad(s, front, ['run', bgRecipe(s, lb, blue, green, '    bake: 4s\n    keep_previous: 10s'), '--release', 'v4']);
    expect(r.code, r.stderr + r.stdout.slice(-2000)).toBe(2);
    zeroFailed(load);
    expect(phaseOf(r, 'bake')?.result).toBe('failed');
    expect(summary(r).warnings.join('\n')).toMatch(/switched back to blue in \d+(ms|\.\ds)/);
    expect(alive(bluePid)).toBe(true);
    expect(load.servedBy.v4).toBeGreaterThan(0);
    expect(s.currentRelease()).toBe('v1');
  });

  it('a target whose gates pass but whose answers through HAProxy are 5xx: the bake sees the LB count grow and switches back, exit 2', async () => {
    const { s, blue, green, bluePid, lb, front } = await world({ v1: {}, v2: {}, v5: { errorRoot: true } });
    const { r, load } = await underLoad(s, front, ['run', bgRecipe(s, lb, blue, green, '    bake: 5s\n    keep_previous: 10s'), '--release', 'v5']);
    expect(r.code, r.stderr + r.stdout.slice(-2000)).toBe(2);
    const bake = phaseOf(r, 'bake');
    expect(bake?.detail).toMatch(/counted \d+ 5xx answers? from green/);
    // noticed within a few looks of the LB, not at the end of the 5 s bake
    expect(bake?.durationMs).toBeLessThan(4_000);
    expect(load.byKind.status5xx).toBeGreaterThan(0);
    expect(alive(bluePid)).toBe(true);
    expect(s.currentRelease()).toBe('v1');
  });

  it('haproxy reloaded right after a switch: traffic stays on the new slot (server-state-file)', async () => {
    const { s, blue, green, lb, front } = await world();
    const r = await s.cli(['run', bgRecipe(s, lb, blue, green), '--release', 'v2']);
    expect(r.code, r.stderr).toBe(0);
    await lb.reload();
    const load = startLoad({ url: `http://127.0.0.1:${front}/`, rate: 200, mode: 'new', maxDurationMs: 1_000 });
    const report = await load.done;
    expect(report.failed).toBe(0);
    expect(Object.keys(report.servedBy)).toEqual(['v2']);
  });

  it('a request held open past drain.timeout: the run ends within the bound and says so', async () => {
    const { s, blue, green, lb, front } = await world();
    // a slow request on blue (the live slot) that outlives the drain timeout
    const http = await import('node:http');
    const held = http.get({ host: '127.0.0.1', port: front, path: '/slow', agent: false });
    held.on('error', () => {});
    try {
      await new Promise((res) => setTimeout(res, 300));
      const recipe = bgRecipe(s, lb, blue, green, '', '    drain: { timeout: 1s, on_timeout: shutdown }');
      const r = await s.cli(['run', recipe, '--release', 'v2']);
      expect(r.code, JSON.stringify(summary(r).timeline) + summary(r).warnings.join('\n')).toBe(0);
      expect(phaseOf(r, 'switch')?.durationMs).toBeLessThan(10_000);
      expect(summary(r).warnings.join('\n')).toMatch(/still had sessions after drain\.timeout 1\.0s[\s\S]*shut down/);
    } finally {
      held.destroy();
    }
  });
});

describe.skipIf(!HAVE_HAPROXY && !underCi)('rolling behind HAProxy, under load', () => {
  const world = (releases: Parameters<typeof setup>[0]) => rollingWorld(setup, releases);

  it('v1 → v2 over 3 instances: exit 0, 0 failed, every instance on v2', async () => {
    const { s, front, file } = await world({ v1: {}, v2: {} });
    const { r, load } = await underLoad(s, front, ['run', file, '--release', 'v2']);
    expect(r.code, r.stderr + r.stdout.slice(-2000)).toBe(0);
    zeroFailed(load);
    for (const i of ['a', 'b', 'c']) expect(readFileSync(join(s.dir, 'slots', i, 'RELEASE'), 'utf8')).toBe('v2');
  });

  it('a release that fails its gates: the updated instance is rolled back, exit 2, 0 failed, the others untouched', async () => {
    const { s, front, file, pids } = await world({ v1: {}, v3: { broken: true } });
    const { r, load } = await underLoad(s, front, ['run', file, '--release', 'v3']);
    expect(r.code, r.stderr + r.stdout.slice(-2000)).toBe(2);
    zeroFailed(load);
    for (const i of ['a', 'b', 'c']) expect(readFileSync(join(s.dir, 'slots', i, 'RELEASE'), 'utf8')).toBe('v1');
    // b and c were never touched
    expect(alive(pids[1] ?? null)).toBe(true);
    expect(alive(pids[2] ?? null)).toBe(true);
    expect(load.servedBy.v3 ?? 0).toBe(0);
  });
});

/** blue live on v1 behind a real nginx whose upstream file safe-restart rewrites; `slowTest` makes the recipe's `nginx -t` take 0.5 s longer. */
async function nginxWorld(releases: Parameters<typeof setup>[0], extra = '', slowTest = false) {
  const s = await setup(releases);
  const blue = { name: 'blue', port: await freePort() };
  const green = { name: 'green', port: await freePort() };
  await startSlot(s, blue, 'v1');
  const front = await freePort();
  const ngxDir = join(s.dir, 'ngx');
  mkdirSync(ngxDir);
  const upstreamFile = join(ngxDir, 'upstream.conf');
  const ngx = await startNginx({ dir: ngxDir, port: front, upstreamFile, upstream: 'app', servers: { blue: blue.port }, workerShutdownTimeout: '5s' });
  const test = slowTest ? ['sh', '-c', 'sleep 0.5; exec "$0" "$@"', ...ngx.testCommand] : ngx.testCommand;
  const file = writeStrategyRecipe(s, 'ngx.yaml', [
    '  blue_green:',
    `    slots: { blue: { port: ${blue.port} }, green: { port: ${green.port} } }`,
    '    traffic:',
    '      nginx:',
    `        upstream_file: ${upstreamFile}`,
    '        upstream: app',
    `        test: ${JSON.stringify(test)}`,
    `        reload: ${JSON.stringify(ngx.reloadCommand)}`,
    `        pidfile: ${ngx.pidfile}`,
    `        check_url: http://127.0.0.1:${front}/healthz`,
    '    drain: { timeout: 5s, on_timeout: proceed }',
    extra,
  ]);
  return { s, blue, green, ngx, front, file, upstreamFile };
}

describe.skipIf(!HAVE_NGINX && !underCi)('blue/green behind nginx, under load', () => {
  it('v1 → v2: exit 0, 0 failed; a new config nginx rejects at reload: detected, rolled back, 0 failed', async () => {
    const { s, ngx, front, file } = await nginxWorld({ v1: {}, v2: {} });
    // new connections: nginx itself resets an idle keep-alive connection now and then when it reloads (about 1 in
    // 15 reloads here, with or without safe-restart), which is nginx's race, not a request the switch dropped
    const first = await underLoad(s, front, ['run', file, '--release', 'v2'], 'new');
    expect(first.r.code, first.r.stderr + first.r.stdout.slice(-2000)).toBe(0);
    zeroFailed(first.load);
    expect(first.load.servedBy.v2).toBeGreaterThan(0);
    // the next reload would also have to bind a port something else holds: the master keeps the old config
    const busy = await freePort();
    const blocker = (await import('node:net')).createServer().listen(busy, '127.0.0.1');
    try {
      ngx.writeConfig({ extraListen: [busy] });
      const second = await underLoad(s, front, ['run', file, '--release', 'v1'], 'new');
      expect(second.r.code, second.r.stderr + second.r.stdout.slice(-2000)).toBe(2);
      zeroFailed(second.load);
      expect(summary(second.r).description).toMatch(/nginx/);
    } finally {
      blocker.close();
    }
  });

  // The window a kill can leave with nginx: the upstream file renamed, nginx not yet reloaded (its `nginx -t` runs in
  // between, made 0.5 s slower here so the kill lands there every time). Killed in the switch back from a release
  // that failed its bake, the file lists blue alone while nginx still sends traffic to green, which answers 503.
  // recover finds the file already as it wants it: it must reload anyway, or green keeps serving.
  it('killed between the upstream file and its reload (switch_back): recover reloads; only blue serves, 0 failed afterwards', async () => {
    const { s, green, front, file, upstreamFile } = await nginxWorld({ v1: {}, v4: { failAfterMs: 1500 } }, '    bake: 20s\n    keep_previous: 30s', true);
    const run = s.start(['run', file, '--release', 'v4']);
    // 200 ms after the intent: the file is renamed within a few ms of it, the slowed `nginx -t` takes 0.5 s more
    let seenAt: number | null = null;
    const left = await killWhenJournal(s, run, (r) => {
      if (r.type !== 'intent' || r.phase !== 'switch_back' || r.action !== 'lb-drain') return false;
      seenAt ??= Date.now();
      return Date.now() - seenAt >= 200;
    }, 60_000);
    expect(left.some((r) => r.type === 'done' && r.phase === 'switch_back' && r.action === 'lb-drain')).toBe(false);
    // the kill landed in the window: the file already lists blue alone (green taken out), not yet reloaded
    expect(readFileSync(upstreamFile, 'utf8')).not.toMatch(new RegExp(`^\\s*server 127\\.0\\.0\\.1:${green.port};`, 'm'));

    const r = await s.cli(['recover', file]);
    expect(r.code, r.stderr + r.stdout.slice(-2000)).toBe(2);
    expect(openIntents(journalSoFar(s, summary(r).journal))).toEqual([]);
    const after = startLoad({ url: `http://127.0.0.1:${front}/`, rate: 200, mode: 'new', maxDurationMs: 1_000 });
    const report = await after.done;
    zeroFailed(report);
    expect(Object.keys(report.servedBy)).toEqual(['v1']);
    expect(s.currentRelease()).toBe('v1');
  });
});

describe.skipIf(!HAVE_HAPROXY && !underCi)('blue/green: kill -9 of safe-restart at a load-balancer step, then recover', () => {
  // ready: killed the moment the idle slot is UP (both in rotation, or the live one already draining);
  // drain: while the old slot drains; bake: after the switch, while the new slot is being proven;
  // switch_back: after a failed bake, the moment the journal shows the switch back begin (old slot → ready)
  it.each(['ready', 'drain', 'bake', 'switch_back'] as const)('killed during %s: the next run says recover; recover (under load: 0 failed) leaves exactly one healthy slot in rotation', async (point) => {
    const { s, blue, green, lb, front } = await world({ v1: {}, v2: {}, v4: { failAfterMs: 1500 } });
    const http = await import('node:http');
    const hold = () => {
      const req = http.get({ host: '127.0.0.1', port: front, path: '/slow', agent: false });
      req.on('error', () => {});
      return req;
    };
    // drain: a held request keeps blue draining long enough to be killed there; bake: a long bake
    let held = point === 'drain' ? hold() : null;
    try {
      await new Promise((res) => setTimeout(res, 300));
      const long = point === 'bake' || point === 'switch_back' ? '    bake: 20s\n    keep_previous: 30s' : '';
      // switch_back: HAProxy keeps the held request's server side until green answers it (20 s), so recover's drain of
      // green ends on its timeout (then shutdown sessions); the kill lands long before that bound
      const recipe = bgRecipe(s, lb, blue, green, long, `    drain: { timeout: ${point === 'switch_back' ? '2s' : '20s'}, on_timeout: shutdown }`);
      // switch_back: v4 answers its health check 503 1.5 s after it starts, so the bake fails and switches back
      const run = s.start(['run', recipe, '--release', point === 'switch_back' ? 'v4' : 'v2']);
      if (point === 'switch_back') {
        await run.waitForEvent((e) => e.event === 'phase_started' && e.phase === 'bake', 30_000);
        // green alone takes new requests now (blue drains): one held there keeps switch_back's drain of green going
        held = hold();
        const left = await killWhenJournal(s, run, (r) => r.type === 'intent' && r.phase === 'switch_back');
        expect(left.some((r) => r.type === 'phase' && r.phase === 'switch_back' && r.status === 'finished')).toBe(false);
        held.destroy();
      } else {
        await run.waitForEvent((e) => (point === 'bake' ? e.event === 'phase_started' && e.phase === 'bake' : e.event === 'step_finished' && e.step === 'lb-ready'), 30_000);
        if (point === 'drain') await new Promise((res) => setTimeout(res, 200));
        run.child.kill('SIGKILL');
        await run.done;
      }
      const blocked = await s.cli(['run', recipe, '--release', 'v2']);
      expect(blocked.code).toBe(4);
      expect(blocked.stderr + blocked.stdout).toMatch(/safe-restart recover /);
      const { r, load } = await underLoad(s, front, ['recover', recipe]);
      expect(r.code, r.stderr + r.stdout.slice(-2000)).toBe(2);
      zeroFailed(load);
      expect(openIntents(journalSoFar(s, summary(r).journal))).toEqual([]);
      const state = await lb.command(`show servers state ${lb.backend}`);
      // exactly one server in rotation (srv_admin_state 0), the other in maint
      const admin = state.split('\n').filter((l) => /^\d/.test(l)).map((l) => l.split(' ')[6]);
      expect(admin.filter((a) => a === '0')).toHaveLength(1);
      const after = startLoad({ url: `http://127.0.0.1:${front}/`, rate: 200, mode: 'mixed', maxDurationMs: 1_000 });
      const report = await after.done;
      expect(report.failed).toBe(0);
      expect(Object.keys(report.servedBy)).toHaveLength(1);
      // the switch back was cut short: recover finishes it — blue, still on v1, takes the traffic; current follows it —
      // and puts blue in before it waits out a single gate of green, the broken slot that may be the only one in rotation
      if (point === 'switch_back') {
        expect(Object.keys(report.servedBy)).toEqual(['v1']);
        expect(s.currentRelease()).toBe('v1');
        const rec = journalSoFar(s, summary(r).journal);
        const blueIn = rec.findIndex((x) => x.type === 'done' && x.action === 'lb-ready' && x.ok === true && String(x.detail).startsWith('blue'));
        expect(blueIn).toBeGreaterThan(0);
        expect(rec.slice(0, blueIn).filter((x) => x.type === 'note' && /slot green .* does not pass its gates/.test(String(x.detail)))).toEqual([]);
      }
    } finally {
      held?.destroy();
    }
  });
});
