// 5. Scale: one recipe with 500 dependencies — half tcp, half http, all on servers in the harness — of which
// a tenth become ready late (tcp ports open, http endpoints flip 503→200) at random moments. Measured:
// safe-restart's exit − the slowest dependency's ready moment, and its peak RSS (/usr/bin/time %M).
// Also: the CPU a long wait costs (a check on a port that never opens), against wait-on doing the same.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { flippingHttp, lateTcpPort, openTcpPort } from '../lib/targets.mjs';
import { NODE, SR, WAIT_ON, freeFixedPort, readTimeFile, removeDir, run, sleep, summarize, tempDir } from '../lib/util.mjs';

const DEPENDENCIES = 500;
const LATE_SHARE = 0.1;
const LATE_FROM_MS = 1500;
const LATE_TO_MS = 3000;

async function trial(dir, random, n) {
  const tcp = [];
  const web = [];
  const lateCount = Math.round(DEPENDENCIES * LATE_SHARE);
  for (let i = 0; i < DEPENDENCIES / 2; i++) {
    const late = i < lateCount / 2;
    const t = lateTcpPort(await freeFixedPort());
    if (!late) await t.open();
    tcp.push({ t, late });
    web.push({ t: await flippingHttp(0, { ready: !late }), late });
  }
  const lines = ['version: 1', `name: scale-${n}`, 'defaults:', '  timeout: 20s', 'dependencies:'];
  tcp.forEach(({ t }, i) => lines.push(`  - name: tcp-${i}`, `    tcp: 127.0.0.1:${t.port}`));
  web.forEach(({ t }, i) => lines.push(`  - name: http-${i}`, `    http: http://127.0.0.1:${t.port}/healthz`));
  lines.push('stop:', '  run: "true"', 'start:', '  run: "true"', '');
  const recipe = join(dir, `scale-${n}.yaml`);
  writeFileSync(recipe, lines.join('\n'));
  const timeFile = join(dir, `time-${n}.txt`);

  const proc = run('/usr/bin/time', ['-o', timeFile, '-f', '%M %U %S', NODE, SR, 'check', recipe, '--json'], { capture: true, timeoutMs: 60_000 });
  const readyAt = [];
  const harnessErrors = [];
  const timers = [];
  for (const { t, late } of [...tcp, ...web]) {
    if (!late) continue;
    const at = LATE_FROM_MS + random() * (LATE_TO_MS - LATE_FROM_MS);
    timers.push(
      sleep(at - (performance.now() - (proc.startedAt - performance.timeOrigin))).then(async () => {
        try {
          readyAt.push('open' in t ? await t.open() : t.flip());
        } catch (error) {
          harnessErrors.push(error.message);
        }
      }),
    );
  }
  const result = await proc.done;
  await Promise.all(timers);
  await Promise.all([...tcp, ...web].map(({ t }) => t.close()));
  let report = null;
  try {
    report = JSON.parse(result.stdout);
  } catch {
    // reported below as not ok
  }
  const slowest = Math.max(...readyAt);
  const usage = readTimeFile(timeFile);
  return {
    exitCode: result.code,
    ok: report?.ok ?? false,
    ready: report?.checks?.filter((c) => c.status === 'ready').length ?? 0,
    slowestReadyAfterStartMs: Math.round(slowest - proc.startedAt),
    afterSlowestMs: Math.round(result.exitedAt - slowest),
    wallMs: Math.round(result.wallMs),
    peakRssMb: usage ? Math.round(usage.rssKb / 102.4) / 10 : null,
    cpuMs: usage?.cpuMs ?? null,
    harnessErrors: harnessErrors.length ? harnessErrors : undefined,
    stderr: result.code === 0 ? undefined : result.stderr.slice(-500),
  };
}

export async function scale({ trials, random, log }) {
  const dir = tempDir('scale');
  const samples = [];
  try {
    for (let i = 0; i < trials; i++) {
      samples.push({ trial: i + 1, ...(await trial(dir, random, i)) });
      log(`scale: trial ${i + 1}/${trials} done`);
    }
  } finally {
    await removeDir(dir);
  }
  return {
    rows: [
      {
        dependencies: DEPENDENCIES,
        late: Math.round(DEPENDENCIES * LATE_SHARE),
        trials: samples.length,
        allOk: samples.every((s) => s.ok),
        afterSlowestMs: summarize(samples.map((s) => s.afterSlowestMs)),
        peakRssMb: summarize(samples.map((s) => s.peakRssMb)),
        cpuMs: summarize(samples.map((s) => s.cpuMs)),
      },
    ],
    samples,
  };
}

/**
 * CPU cost of waiting: a check whose port never opens, for `seconds`, minus the same tool's CPU on an open
 * port (its start-up), extrapolated linearly to 60 s. wait-on (defaults) does the same for comparison.
 */
export async function idleCpu({ seconds, log }) {
  const dir = tempDir('idle');
  const open = await openTcpPort();
  const closed = await freeFixedPort();
  const recipe = (name, port, timeout) => {
    const file = join(dir, `${name}.yaml`);
    writeFileSync(file, ['version: 1', `name: ${name}`, 'dependencies:', '  - name: dep', `    tcp: 127.0.0.1:${port}`, `    timeout: ${timeout}`, 'stop:', '  run: "true"', 'start:', '  run: "true"', ''].join('\n'));
    return file;
  };
  const measure = async (id, args) => {
    const timeFile = join(dir, `${id}.txt`);
    const r = await run('/usr/bin/time', ['-o', timeFile, '-f', '%M %U %S', NODE, ...args], { timeoutMs: (seconds + 30) * 1000 }).done;
    return { id, exitCode: r.code, wallMs: Math.round(r.wallMs), ...readTimeFile(timeFile) };
  };
  const samples = [];
  try {
    samples.push(await measure('safe-restart-start', [SR, 'check', recipe('idle-open', open.port, '5s')]));
    samples.push(await measure('safe-restart-wait', [SR, 'check', recipe('idle-closed', closed, `${seconds}s`)]));
    samples.push(await measure('wait-on-start', [WAIT_ON, '-t', '5000', `tcp:127.0.0.1:${open.port}`]));
    samples.push(await measure('wait-on-wait', [WAIT_ON, '-t', String(seconds * 1000), `tcp:127.0.0.1:${closed}`]));
    log('idle-cpu: done');
  } finally {
    await open.close();
    await removeDir(dir);
  }
  const per60 = (tool) => {
    const start = samples.find((s) => s.id === `${tool}-start`);
    const wait = samples.find((s) => s.id === `${tool}-wait`);
    if (!start?.cpuMs && start?.cpuMs !== 0) return null;
    const waitedS = wait.wallMs / 1000;
    const perSecond = Math.max(0, wait.cpuMs - start.cpuMs) / waitedS;
    return { tool, waitedS: Math.round(waitedS * 10) / 10, cpuMsWait: wait.cpuMs, cpuMsStart: start.cpuMs, cpuMsPerSecond: Math.round(perSecond * 10) / 10, cpuMsPer60s: Math.round(perSecond * 60), cpuPct: Math.round(perSecond / 10 * 100) / 100 };
  };
  return { rows: [per60('safe-restart'), per60('wait-on')], samples, seconds };
}
