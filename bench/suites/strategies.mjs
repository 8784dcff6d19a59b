// 7. Strategies under load through a real load balancer: ~200 req/s (every other request on a keep-alive
// connection, 2 s per-request timeout) to HAProxy 2.6 or nginx 1.22 on loopback while one release (v1 → v2)
// goes out — naive `kill; start` of the one instance behind HAProxy, safe-restart in place behind HAProxy,
// blue/green behind HAProxy and behind nginx, rolling over 3 instances behind HAProxy — counting every failed
// request by kind and the longest failure window. Then the time of a rollback, for a release whose /healthz
// turns 503 1.5 s after it listens (while / keeps answering), during a 4 s bake: blue/green's switch back
// (its summary warning "switched back to blue in Nms", and the failing bake → v1 answering through HAProxy
// again) against the in-place rollback (the failed gate → v1 passing its gates again, and answering again).
// Recipes and load-balancer configs are those of test/strategy/blue-green.test.ts.
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { startHaproxy, startNginx } from '../lib/lb.mjs';
import { failures, startLoad } from '../lib/load.mjs';
import { parseEvents, waitHealthy } from '../lib/production.mjs';
import { NODE, SR, copyService, freePort, now, removeDir, run, shuffle, sleep, summarize, tempDir } from '../lib/util.mjs';

const RATE = 200;
const REQUEST_TIMEOUT_MS = 2_000;
const LEAD_MS = 500;
const TAIL_MS = 500;
const WARMUP_MS = 400;
const FAIL_AFTER_MS = 1_500;
const BAKE_MS = 4_000;

// ---- a temp "production": releases of the bench service, slots or one `current`, pidfiles and logs

function makeWorld(name, releases) {
  const dir = tempDir(`strategies-${name}`);
  for (const sub of ['run', 'log', 'releases', 'state', 'slots']) mkdirSync(join(dir, sub));
  for (const [id, flags] of Object.entries(releases)) {
    const rel = join(dir, 'releases', id);
    mkdirSync(rel);
    copyService(rel);
    writeFileSync(join(rel, 'RELEASE'), id);
    if (flags.failAfterMs !== undefined) writeFileSync(join(rel, 'FAIL_AFTER_MS'), String(flags.failAfterMs));
  }
  return { dir, stateDir: join(dir, 'state'), lbs: [] };
}

/** Starts one instance the way production already runs it (detached, own group, pidfile, log); waits healthy. */
async function startInstance(w, { name, port, link, release = 'v1' }) {
  symlinkSync(join(w.dir, 'releases', release), link);
  const out = openSync(join(w.dir, 'log', `${name}.log`), 'a');
  const child = spawn(NODE, ['service.mjs'], { cwd: link, detached: true, stdio: ['ignore', out, out], env: { ...process.env, PORT: String(port), WARMUP_MS: String(WARMUP_MS) } });
  closeSync(out);
  child.unref();
  writeFileSync(join(w.dir, 'run', `${name}.pid`), `${child.pid}\n`);
  await waitHealthy(port);
  return child.pid;
}

const slotLink = (w, name) => join(w.dir, 'slots', name);
// with slots, `current` follows the live slot: it starts at v1 like the slots
const currentAtV1 = (w) => symlinkSync(join(w.dir, 'releases', 'v1'), join(w.dir, 'current'));

// ---- recipes (test/strategy/blue-green.test.ts)

const HEADER = (w) => [
  'version: 1',
  'name: svc',
  'defaults: { interval: 50ms, attempt_timeout: 1s, timeout: 10s }',
  'release:',
  `  symlink: ${w.dir}/current`,
  `  releases_dir: ${w.dir}/releases`,
];

const SLOT_SERVICE = (w) => [
  'start:',
  `  spawn: ["${NODE}", "service.mjs"]`,
  `  cwd: ${w.dir}/slots/\${SAFE_RESTART_SLOT}`,
  `  pidfile: ${w.dir}/run/\${SAFE_RESTART_SLOT}.pid`,
  `  log: ${w.dir}/log/\${SAFE_RESTART_SLOT}.log`,
  `  env: { PORT: "\${SAFE_RESTART_PORT}", WARMUP_MS: "${WARMUP_MS}" }`,
  'stop:',
  '  signal: SIGTERM',
  `  pidfile: ${w.dir}/run/\${SAFE_RESTART_SLOT}.pid`,
  '  grace: 3s',
];

const GATES = (url, extra = []) => [
  'gates:',
  '  - name: healthz',
  `    http: { url: "${url}", body: "ok \${SAFE_RESTART_RELEASE} " }`,
  '    success_threshold: 2',
  '    timeout: 10s',
  ...extra,
];

function writeRecipe(w, name, lines) {
  const file = join(w.dir, `${name}.yaml`);
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

const cli = (w, recipe, release) => () => run(NODE, [SR, 'run', recipe, '--release', release, '--json', '--state-dir', w.stateDir], { capture: true, timeoutMs: 60_000 });

// ---- set-ups: each starts the instances and the load balancer, and returns the front port and the action

/** One instance (`current` → v1) behind HAProxy, server `web`. */
async function single(w) {
  const port = await freePort();
  const front = await freePort();
  await startInstance(w, { name: 'web', port, link: join(w.dir, 'current') });
  w.lbs.push(await startHaproxy({ dir: join(w.dir, 'lb'), port: front, servers: { web: port } }));
  return { port, front };
}

function inPlaceRecipe(w, port, stableFor) {
  return writeRecipe(w, 'in-place', [
    ...HEADER(w),
    'start:',
    `  spawn: ["${NODE}", "service.mjs"]`,
    `  cwd: ${w.dir}/current`,
    `  pidfile: ${w.dir}/run/web.pid`,
    `  log: ${w.dir}/log/web.log`,
    `  env: { PORT: "${port}", WARMUP_MS: "${WARMUP_MS}" }`,
    'stop:',
    '  signal: SIGTERM',
    `  pidfile: ${w.dir}/run/web.pid`,
    '  grace: 3s',
    ...GATES(`http://127.0.0.1:${port}/healthz`, stableFor ? [`    stable_for: ${stableFor}`] : []),
  ]);
}

async function blueGreenHaproxy(w, { bake = false } = {}) {
  currentAtV1(w);
  const blue = await freePort();
  const green = await freePort();
  const front = await freePort();
  await startInstance(w, { name: 'blue', port: blue, link: slotLink(w, 'blue') });
  const lb = await startHaproxy({ dir: join(w.dir, 'lb'), port: front, servers: { blue, green }, disabled: ['green'] });
  w.lbs.push(lb);
  const recipe = writeRecipe(w, 'bg', [
    ...HEADER(w),
    'strategy:',
    '  blue_green:',
    `    slots: { blue: { port: ${blue} }, green: { port: ${green} } }`,
    '    traffic:',
    `      haproxy: { socket: ${lb.adminSocket}, backend: ${lb.backend}, servers: { blue: blue, green: green }, state_file: ${lb.stateFile} }`,
    '    drain: { timeout: 5s, on_timeout: shutdown }',
    ...(bake ? [`    bake: ${BAKE_MS / 1000}s`, '    keep_previous: 10s'] : []),
    ...SLOT_SERVICE(w),
    ...GATES('http://127.0.0.1:${SAFE_RESTART_PORT}/healthz'),
  ]);
  return { front, recipe };
}

async function blueGreenNginx(w) {
  currentAtV1(w);
  const blue = await freePort();
  const green = await freePort();
  const front = await freePort();
  await startInstance(w, { name: 'blue', port: blue, link: slotLink(w, 'blue') });
  const ngxDir = join(w.dir, 'ngx');
  const upstreamFile = join(ngxDir, 'upstream.conf');
  mkdirSync(ngxDir);
  const ngx = await startNginx({ dir: ngxDir, port: front, upstreamFile, upstream: 'app', servers: { blue }, workerShutdownTimeout: '5s' });
  w.lbs.push(ngx);
  const recipe = writeRecipe(w, 'bg-nginx', [
    ...HEADER(w),
    'strategy:',
    '  blue_green:',
    `    slots: { blue: { port: ${blue} }, green: { port: ${green} } }`,
    '    traffic:',
    '      nginx:',
    `        upstream_file: ${upstreamFile}`,
    '        upstream: app',
    `        test: ${JSON.stringify(ngx.testCommand)}`,
    `        reload: ${JSON.stringify(ngx.reloadCommand)}`,
    `        pidfile: ${ngx.pidfile}`,
    `        check_url: http://127.0.0.1:${front}/healthz`,
    '    drain: { timeout: 5s, on_timeout: proceed }',
    ...SLOT_SERVICE(w),
    ...GATES('http://127.0.0.1:${SAFE_RESTART_PORT}/healthz'),
  ]);
  return { front, recipe };
}

async function rollingHaproxy(w) {
  currentAtV1(w);
  const instances = [];
  for (const name of ['a', 'b', 'c']) instances.push({ name, port: await freePort() });
  const front = await freePort();
  for (const i of instances) await startInstance(w, { name: i.name, port: i.port, link: slotLink(w, i.name) });
  const lb = await startHaproxy({ dir: join(w.dir, 'lb'), port: front, servers: Object.fromEntries(instances.map((i) => [i.name, i.port])) });
  w.lbs.push(lb);
  const recipe = writeRecipe(w, 'rolling', [
    ...HEADER(w),
    'strategy:',
    '  rolling:',
    `    instances: [${instances.map((i) => `{ name: ${i.name}, port: ${i.port} }`).join(', ')}]`,
    '    traffic:',
    `      haproxy: { socket: ${lb.adminSocket}, backend: ${lb.backend}, state_file: ${lb.stateFile} }`,
    '    drain: { timeout: 5s }',
    ...SLOT_SERVICE(w),
    ...GATES('http://127.0.0.1:${SAFE_RESTART_PORT}/healthz'),
  ]);
  return { front, recipe };
}

// the runbook's restart: switch the link, kill the old process, start the new one; no drain, no wait
const NAIVE = `ln -sfn "$DIR/releases/v2" "$DIR/current"
kill "$(cat "$PIDFILE")"
cd "$DIR/current"
setsid "$NODE" service.mjs >> "$LOG" 2>&1 < /dev/null &
echo $! > "$PIDFILE"`;

export const SCENARIOS = [
  {
    id: 'naive',
    label: 'naive kill; start (1 instance)',
    lb: 'HAProxy',
    releases: { v1: {}, v2: {} },
    expect: 'v2',
    setup: async (w) => {
      const { port, front } = await single(w);
      const env = { DIR: w.dir, PIDFILE: join(w.dir, 'run', 'web.pid'), LOG: join(w.dir, 'log', 'web.log'), NODE, PORT: String(port), WARMUP_MS: String(WARMUP_MS) };
      return { front, act: () => run('bash', ['-c', NAIVE], { env, capture: true }) };
    },
  },
  {
    id: 'in_place',
    label: 'safe-restart in_place (1 instance)',
    lb: 'HAProxy',
    releases: { v1: {}, v2: {} },
    expect: 'v2',
    setup: async (w) => {
      const { port, front } = await single(w);
      return { front, act: cli(w, inPlaceRecipe(w, port), 'v2') };
    },
  },
  {
    id: 'blue_green',
    label: 'safe-restart blue_green',
    lb: 'HAProxy',
    releases: { v1: {}, v2: {} },
    expect: 'v2',
    setup: async (w) => {
      const { front, recipe } = await blueGreenHaproxy(w);
      return { front, act: cli(w, recipe, 'v2') };
    },
  },
  {
    id: 'blue_green-nginx',
    label: 'safe-restart blue_green',
    lb: 'nginx',
    releases: { v1: {}, v2: {} },
    expect: 'v2',
    setup: async (w) => {
      const { front, recipe } = await blueGreenNginx(w);
      return { front, act: cli(w, recipe, 'v2') };
    },
  },
  {
    id: 'rolling',
    label: 'safe-restart rolling (3 instances)',
    lb: 'HAProxy',
    releases: { v1: {}, v2: {} },
    expect: 'v2',
    setup: async (w) => {
      const { front, recipe } = await rollingHaproxy(w);
      return { front, act: cli(w, recipe, 'v2') };
    },
  },
  {
    id: 'blue_green-rollback',
    label: 'blue_green, bad during a 4 s bake',
    lb: 'HAProxy',
    rollback: true,
    releases: { v1: {}, v4: { failAfterMs: FAIL_AFTER_MS } },
    expect: 'v1',
    setup: async (w) => {
      const { front, recipe } = await blueGreenHaproxy(w, { bake: true });
      return { front, act: cli(w, recipe, 'v4') };
    },
  },
  {
    id: 'in_place-rollback',
    label: 'in_place, bad during a 4 s stable_for',
    lb: 'HAProxy',
    rollback: true,
    releases: { v1: {}, v4: { failAfterMs: FAIL_AFTER_MS } },
    expect: 'v1',
    setup: async (w) => {
      const { port, front } = await single(w);
      return { front, act: cli(w, inPlaceRecipe(w, port, `${BAKE_MS / 1000}s`), 'v4') };
    },
  },
];

/** GET / through the front; the first line of a 200 answer, else null. */
function served(port, timeoutMs = 500) {
  return new Promise((r) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => r(res.statusCode === 200 ? body.split('\n')[0].trim() : null));
      res.on('error', () => r(null));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => r(null));
  });
}

/** The moment the front first answers with `release` (polled every 20 ms), or null after timeoutMs. */
async function waitServed(port, release, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await served(port)) === release) return now();
    await sleep(20);
  }
  return null;
}

/** The service's timestamped lifecycle lines from one log. */
function serviceLines(w, name) {
  try {
    return readFileSync(join(w.dir, 'log', `${name}.log`), 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('{"bench":"service"'))
      .map((l) => JSON.parse(l));
  } catch {
    return [];
  }
}

const since = (t, event) => (t === null || !event ? null : Math.round(event.at - t));
const SWITCHED_BACK = /switched back to (\w+) in (\d+(?:\.\d+)?)(ms|s)\b/;

async function trial(scenario) {
  const w = makeWorld(scenario.id, scenario.releases);
  try {
    const s = await scenario.setup(w);
    if ((await waitServed(s.front, 'v1', 10_000)) === null) throw new Error(`${scenario.id}: the load balancer does not serve v1 before the run`);
    const load = startLoad({ port: s.front, rate: RATE, requestTimeoutMs: REQUEST_TIMEOUT_MS, maxInFlight: 500, mode: 'mixed', body: true, maxDurationMs: 60_000, maxRequests: 12_000 });
    await sleep(LEAD_MS);
    const result = await s.act().done;
    // "done" for the client: the front answers with the release the run should have left serving
    const servedAt = await waitServed(s.front, scenario.expect, 10_000);
    await sleep(TAIL_MS);
    const { skipped } = await load.stop();
    const from = result.startedAt - LEAD_MS;
    const to = Math.max(result.exitedAt, servedAt ?? result.exitedAt) + TAIL_MS - 50;
    const f = failures(load.records, from, to, 1000 / RATE);
    const events = parseEvents(result.stdout);
    const summary = events.find((e) => e.event === 'summary')?.summary ?? null;
    const sample = {
      scenario: scenario.id,
      exitCode: result.code,
      outcome: summary?.outcome ?? null,
      wallMs: Math.round(result.wallMs),
      servedAfterExitMs: servedAt === null ? null : Math.round(servedAt - result.exitedAt),
      skipped,
      ...f,
      latencyP99Ms: f.latencyMs.p99,
      latencyMaxMs: f.latencyMs.max,
      firstFailures: load.records.filter((r) => !r.ok && r.start >= from && r.start <= to).slice(0, 5).map((r) => ({ atMs: Math.round(r.start - from), kind: r.kind, error: r.error, keepAlive: r.keepAlive })),
      timeline: summary?.timeline?.map((t) => ({ phase: t.phase, durationMs: t.durationMs, result: t.result })) ?? null,
      warnings: summary?.warnings ?? null,
    };
    if (scenario.rollback) {
      const firstV1After = (t) => load.records.filter((r) => r.ok && r.body === 'v1' && r.start >= t).sort((a, b) => a.end - b.end)[0]?.end ?? null;
      if (scenario.id.startsWith('blue_green')) {
        const bakeFailed = events.find((e) => e.event === 'check_finished' && e.phase === 'bake' && e.check?.status === 'failed') ?? null;
        const m = events.filter((e) => e.event === 'warning').map((e) => SWITCHED_BACK.exec(e.message ?? '')).find(Boolean) ?? null;
        sample.failedAt = bakeFailed?.at ?? null;
        sample.failureToRollbackMs = since(sample.failedAt, events.find((e) => e.event === 'phase_started' && e.phase === 'switch_back'));
        sample.switchedBackMs = m ? Number(m[2]) * (m[3] === 's' ? 1000 : 1) : null;
        const back = sample.failedAt === null ? null : firstV1After(sample.failedAt);
        sample.oldServingAgainMs = back === null ? null : Math.round(back - sample.failedAt);
        sample.v4Served = f.servedBy.v4 ?? 0;
      } else {
        const gateFailed = events.find((e) => e.event === 'check_finished' && e.phase === 'gates' && e.check?.status === 'failed') ?? null;
        const ready = events.find((e) => e.event === 'check_finished' && e.phase === 'rollback_gates' && e.check?.status === 'ready') ?? null;
        sample.failedAt = gateFailed?.at ?? null;
        sample.failureToRollbackMs = since(sample.failedAt, events.find((e) => e.event === 'phase_started' && e.phase === 'rollback_stop'));
        if (gateFailed && ready) {
          sample.rollbackGatesReadyMs = Math.round(ready.at - gateFailed.at);
          // its gate passed again when its stable_for began: ready − stable_for (within one 50 ms interval)
          sample.passingAgainMs = Math.round(ready.at - gateFailed.at - BAKE_MS);
        }
        const v1 = serviceLines(w, 'web').find((e) => e.ev === 'listening' && e.release === 'v1' && sample.failedAt !== null && e.t > sample.failedAt);
        sample.previousListeningMs = v1 ? Math.round(v1.t - sample.failedAt) : null;
        const back = sample.failedAt === null ? null : firstV1After(sample.failedAt);
        sample.oldServingAgainMs = back === null ? null : Math.round(back - sample.failedAt);
        sample.v4Served = f.servedBy.v4 ?? 0;
      }
    }
    if (result.code !== (scenario.rollback ? 2 : 0)) sample.stderr = `${result.stderr.slice(-500)}${summary?.description ? `\n${summary.description}` : ''}`;
    return sample;
  } catch (error) {
    return { scenario: scenario.id, error: String(error?.stack ?? error).slice(0, 1500), lbLog: w.lbs.map((lb) => lb.log()).join('\n').slice(-1500) };
  } finally {
    for (const lb of w.lbs) await lb.stop();
    await removeDir(w.dir);
  }
}

export async function strategies({ trials, random, log, only }) {
  const scenarios = only ? SCENARIOS.filter((s) => only.includes(s.id)) : SCENARIOS;
  const samples = [];
  for (let i = 0; i < trials; i++) {
    for (const s of shuffle(scenarios, random)) {
      const sample = await trial(s);
      samples.push({ trial: i + 1, ...sample });
      if (sample.error) log(`strategies: ${s.id} trial ${i + 1}: ${sample.error.split('\n')[0]}`);
    }
    log(`strategies: trial ${i + 1}/${trials} done`);
  }
  const rows = scenarios.map((s) => {
    const mine = samples.filter((x) => x.scenario === s.id && !x.error);
    const sum = (k) => summarize(mine.map((x) => x[k]));
    const kinds = Object.fromEntries(['5xx', '4xx', 'status', 'reset', 'refused', 'timeout', 'other'].map((k) => [k, summarize(mine.map((x) => x.byKind[k]))]));
    return {
      scenario: s.id,
      label: s.label,
      lb: s.lb,
      rollback: Boolean(s.rollback),
      trials: mine.length,
      errors: samples.filter((x) => x.scenario === s.id && x.error).length,
      exitCodes: [...new Set(mine.map((x) => x.exitCode))],
      requests: sum('requests'),
      failed: sum('failed'),
      failedPct: sum('failedPct'),
      byKind: kinds,
      longestFailureWindowMs: sum('longestFailureWindowMs'),
      latencyP99Ms: sum('latencyP99Ms'),
      latencyMaxMs: sum('latencyMaxMs'),
      wallMs: sum('wallMs'),
      servedAfterExitMs: sum('servedAfterExitMs'),
      skipped: mine.reduce((a, x) => a + (x.skipped ?? 0), 0),
      ...(s.rollback
        ? {
            failureToRollbackMs: sum('failureToRollbackMs'),
            switchedBackMs: sum('switchedBackMs'),
            oldServingAgainMs: sum('oldServingAgainMs'),
            rollbackGatesReadyMs: sum('rollbackGatesReadyMs'),
            passingAgainMs: sum('passingAgainMs'),
            previousListeningMs: sum('previousListeningMs'),
            v4Served: sum('v4Served'),
          }
        : {}),
    };
  });
  return {
    setup: { rate: RATE, requestTimeoutMs: REQUEST_TIMEOUT_MS, mode: 'mixed', leadMs: LEAD_MS, tailMs: TAIL_MS, warmupMs: WARMUP_MS, failAfterMs: FAIL_AFTER_MS, bakeMs: BAKE_MS },
    rows,
    samples,
  };
}
