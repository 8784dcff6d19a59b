// 3. Restart downtime under load: a service with a 400 ms warm-up takes ~200 req/s from the harness
// (keep-alive off, 300 ms per-request timeout) while each method restarts it. Per method: requests, failed,
// longest gap without a successful response, restart wall time, and wall − the service's own stop time and
// warm-up (from its timestamped log) — for safe-restart that is its own overhead.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { downtime, startLoad } from '../lib/load.mjs';
import { createProduction, lifecycle, parseEvents, startCurrent, waitHealthy } from '../lib/production.mjs';
import { openTcpPort } from '../lib/targets.mjs';
import { NODE, SR, killGroup, now, removeDir, run, shuffle, sleep, summarize } from '../lib/util.mjs';

const LEAD_MS = 500;
const TAIL_MS = 500;

// `cd` on its own line: `cd … && cmd &` would background a subshell, and $! would be the subshell's pid
const START_LINE = 'cd "$DIR/current"\nsetsid "$NODE" service.mjs >> "$LOG" 2>&1 < /dev/null &\necho $! > "$PIDFILE"';

export const METHODS = [
  {
    id: 'naive',
    label: 'naive kill; start',
    setup: async (p) => ({ oldPid: await startCurrent(p), restart: () => run('bash', ['-c', `kill "$(cat "$PIDFILE")"\n${START_LINE}`], { env: scriptEnv(p) }) }),
  },
  {
    id: 'runbook',
    label: 'runbook (nc wait, kill, start)',
    setup: async (p) => ({
      oldPid: await startCurrent(p),
      restart: () =>
        run(
          'bash',
          [
            '-c',
            `until nc -z 127.0.0.1 "$DEP_PORT"; do sleep 2; done\nkill "$(cat "$PIDFILE")"\n${START_LINE}\nuntil nc -z 127.0.0.1 "$PORT"; do sleep 2; done`,
          ],
          { env: scriptEnv(p) },
        ),
    }),
  },
  {
    id: 'supervisord',
    label: 'supervisorctl restart',
    setup: async (p) => {
      const conf = supervisorConf(p);
      const daemon = run('supervisord', ['-c', conf], { cwd: p.dir, timeoutMs: 600_000 });
      await waitHealthy(p.port);
      const status = await run('supervisorctl', ['-c', conf, 'pid', 'web'], { capture: true }).done;
      return {
        oldPid: Number(status.stdout.trim()),
        restart: () => run('supervisorctl', ['-c', conf, 'restart', 'web'], { capture: true }),
        teardown: async () => {
          await run('supervisorctl', ['-c', conf, 'shutdown'], { timeoutMs: 10_000 }).done;
          const gone = await Promise.race([daemon.done.then(() => true), sleep(5_000).then(() => false)]);
          if (!gone) killGroup(daemon.pid);
        },
      };
    },
  },
  {
    id: 'safe-restart',
    label: 'safe-restart run (in place)',
    setup: async (p) => ({
      oldPid: await startCurrent(p),
      restart: () => run(NODE, [SR, 'run', p.recipe, '--json', '--state-dir', p.stateDir], { capture: true }),
    }),
  },
  {
    id: 'safe-restart-release',
    label: 'safe-restart run --release v2',
    setup: async (p) => ({
      oldPid: await startCurrent(p),
      restart: () => run(NODE, [SR, 'run', p.recipe, '--release', 'v2', '--json', '--state-dir', p.stateDir], { capture: true }),
    }),
  },
];

function scriptEnv(p) {
  return { DIR: p.dir, PIDFILE: p.pidfile, LOG: p.logFile, DEP_PORT: String(p.depPort), ...p.env };
}

function supervisorConf(p) {
  const file = join(p.dir, 'supervisord.conf');
  writeFileSync(
    file,
    `[unix_http_server]
file=${p.dir}/run/supervisor.sock

[supervisord]
nodaemon=true
directory=${p.dir}
logfile=${p.dir}/log/supervisord.log
pidfile=${p.dir}/run/supervisord.pid
childlogdir=${p.dir}/log

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://${p.dir}/run/supervisor.sock

[program:web]
command=${process.execPath} service.mjs
directory=${p.dir}/current
environment=PORT="${p.port}",WARMUP_MS="${p.warmupMs}"
stdout_logfile=${p.logFile}
redirect_stderr=true
autostart=true
autorestart=true
startsecs=1
stopsignal=TERM
stopwaitsecs=5
stopasgroup=true
killasgroup=true
`,
  );
  return file;
}

async function trial(method, depPort) {
  const p = await createProduction(`restart-${method.id}`, { depPort });
  let setup = null;
  try {
    setup = await method.setup(p);
    const load = startLoad({ port: p.port });
    await sleep(LEAD_MS);
    const proc = setup.restart();
    const result = await proc.done;
    let recoveredAt = null;
    try {
      await waitHealthy(p.port, 10_000);
      recoveredAt = now();
    } catch {
      // measured as a gap reaching the window's end
    }
    await sleep(TAIL_MS);
    await load.stop();
    const windowFrom = result.startedAt - LEAD_MS;
    const windowTo = Math.max(result.exitedAt, recoveredAt ?? 0) + TAIL_MS - 50;
    const d = downtime(load.records, windowFrom, windowTo);
    const life = lifecycle(p, setup.oldPid, result.startedAt);
    const wallMs = Math.round(result.wallMs);
    const sample = {
      method: method.id,
      exitCode: result.code,
      wallMs,
      ...d,
      stopMs: life.stopMs,
      warmupMs: life.warmupMs,
      newRelease: life.newRelease,
      overheadMs: life.stopMs !== null && life.warmupMs !== null ? Math.round(wallMs - life.stopMs - life.warmupMs) : null,
      // the method said "done" before the new process even listened (it reported readiness it had not seen)
      returnedBeforeListening: life.listeningAt !== null ? result.exitedAt < life.listeningAt : null,
      gapOverServiceMs: life.stopMs !== null && life.warmupMs !== null ? Math.round(d.longestGapMs - life.stopMs - life.warmupMs) : null,
    };
    if (method.id.startsWith('safe-restart')) {
      const events = parseEvents(result.stdout);
      const summary = events.find((e) => e.event === 'summary')?.summary;
      sample.outcome = summary?.outcome ?? null;
      sample.timeline = summary?.timeline?.map((t) => ({ phase: t.phase, startMs: t.startMs, durationMs: t.durationMs })) ?? null;
      // how long after the service's own "listening" the gate saw it ready, and how long the process ran after that
      const gateDone = events.find((e) => e.event === 'check_finished' && e.phase === 'gates')?.at ?? null;
      sample.gateAfterListenMs = gateDone !== null && life.listeningAt !== null ? Math.round(gateDone - life.listeningAt) : null;
      sample.exitAfterGateMs = gateDone !== null ? Math.round(result.exitedAt - gateDone) : null;
      sample.firstEventMs = events.length ? Math.round(events[0].at - result.startedAt) : null;
      sample.startToSigtermMs = life.sigtermAt !== null ? Math.round(life.sigtermAt - result.startedAt) : null;
      sample.exitToBootMs = life.exitAt !== null && life.bootAt !== null ? Math.round(life.bootAt - life.exitAt) : null;
      if (result.code !== 0) sample.stderr = result.stderr.slice(-500);
    } else if (result.code !== 0) sample.stderr = result.stderr.slice(-500);
    return sample;
  } finally {
    await setup?.teardown?.();
    await removeDir(p.dir);
  }
}

export async function restart({ trials, random, log, only }) {
  const dep = await openTcpPort();
  const methods = only ? METHODS.filter((m) => only.includes(m.id)) : METHODS;
  const samples = [];
  try {
    for (let i = 0; i < trials; i++) {
      for (const m of shuffle(methods, random)) samples.push({ trial: i + 1, ...(await trial(m, dep.port)) });
      log(`restart: trial ${i + 1}/${trials} done`);
    }
  } finally {
    await dep.close();
  }
  const rows = methods.map((m) => {
    const mine = samples.filter((s) => s.method === m.id);
    const med = (k) => summarize(mine.map((s) => s[k]));
    return {
      method: m.id,
      label: m.label,
      trials: mine.length,
      exitCodes: [...new Set(mine.map((s) => s.exitCode))],
      requests: med('requests'),
      failed: med('failed'),
      failedPct: med('failedPct'),
      longestGapMs: med('longestGapMs'),
      wallMs: med('wallMs'),
      stopMs: med('stopMs'),
      warmupMs: med('warmupMs'),
      overheadMs: med('overheadMs'),
      gapOverServiceMs: med('gapOverServiceMs'),
      returnedBeforeListening: mine.filter((s) => s.returnedBeforeListening).length,
      ...(m.id.startsWith('safe-restart')
        ? {
            breakdown: {
              processStartToFirstEventMs: med('firstEventMs'),
              processStartToSigtermMs: med('startToSigtermMs'),
              oldExitToNewBootMs: med('exitToBootMs'),
              gateReadyAfterListeningMs: med('gateAfterListenMs'),
              exitAfterGateMs: med('exitAfterGateMs'),
            },
          }
        : {}),
    };
  });
  return { rows, samples };
}
