// 4. Rollback time: v1 runs; `safe-restart run --release v3` switches to a release whose /healthz answers 503,
// the gate's deadline (2 s) expires, and safe-restart rolls back to v1. Rollback time is measured from the
// failed gate's check_finished event to the rollback gate's check_finished (ready), both from `--json`;
// the previous release's own warm-up comes from its timestamped log.
import { createProduction, lifecycle, parseEvents, startCurrent } from '../lib/production.mjs';
import { openTcpPort } from '../lib/targets.mjs';
import { NODE, SR, removeDir, run, summarize } from '../lib/util.mjs';

const GATE_TIMEOUT = '2s';

async function trial(depPort) {
  const p = await createProduction('rollback', { releases: { v1: {}, v3: { broken: true } }, depPort, gate: { timeout: GATE_TIMEOUT } });
  try {
    const oldPid = await startCurrent(p);
    const result = await run(NODE, [SR, 'run', p.recipe, '--release', 'v3', '--json', '--state-dir', p.stateDir], { capture: true, timeoutMs: 60_000 }).done;
    const events = parseEvents(result.stdout);
    const gateStarted = events.find((e) => e.event === 'check_started' && e.phase === 'gates');
    const gateFailed = events.find((e) => e.event === 'check_finished' && e.phase === 'gates');
    const back = events.find((e) => e.event === 'check_finished' && e.phase === 'rollback_gates');
    const summary = events.find((e) => e.event === 'summary')?.summary;
    // the v3 process is the first booted after the run started; the v1 process after the gate failed
    const v3 = lifecycle(p, oldPid, result.startedAt, 'first');
    const v1 = gateFailed ? lifecycle(p, v3.newPid, gateFailed.at) : null;
    const rollbackMs = gateFailed && back?.check?.status === 'ready' ? back.at - gateFailed.at : null;
    const phase = (name) => summary?.timeline?.find((t) => t.phase === name)?.durationMs ?? null;
    return {
      exitCode: result.code,
      outcome: summary?.outcome ?? null,
      gateFailedStatus: gateFailed?.check?.status ?? null,
      // how far past its deadline the failed gate reported (timeout counts from the gate's start)
      gateOverrunMs: gateStarted && gateFailed ? Math.round(gateFailed.at - gateStarted.at - 2000) : null,
      rollbackMs: rollbackMs === null ? null : Math.round(rollbackMs),
      previousWarmupMs: v1?.warmupMs ?? null,
      v3StopMs: v1?.stopMs ?? null,
      overheadMs: rollbackMs !== null && v1?.warmupMs != null ? Math.round(rollbackMs - v1.warmupMs) : null,
      gateAfterListenMs: back && v1?.listeningAt ? Math.round(back.at - v1.listeningAt) : null,
      phases: {
        rollback_stop: phase('rollback_stop'),
        rollback_activate: phase('rollback_activate'),
        rollback_start: phase('rollback_start'),
        rollback_gates: phase('rollback_gates'),
      },
      stderr: result.code === 2 ? undefined : result.stderr.slice(-500),
    };
  } finally {
    await removeDir(p.dir);
  }
}

export async function rollback({ trials, log }) {
  const dep = await openTcpPort();
  const samples = [];
  try {
    for (let i = 0; i < trials; i++) {
      samples.push({ trial: i + 1, ...(await trial(dep.port)) });
      log(`rollback: trial ${i + 1}/${trials} done`);
    }
  } finally {
    await dep.close();
  }
  const row = {
    trials: samples.length,
    exitCodes: [...new Set(samples.map((s) => s.exitCode))],
    rollbackMs: summarize(samples.map((s) => s.rollbackMs)),
    previousWarmupMs: summarize(samples.map((s) => s.previousWarmupMs)),
    overheadMs: summarize(samples.map((s) => s.overheadMs)),
    v3StopMs: summarize(samples.map((s) => s.v3StopMs)),
    gateOverrunMs: summarize(samples.map((s) => s.gateOverrunMs)),
    gateAfterListenMs: summarize(samples.map((s) => s.gateAfterListenMs)),
  };
  return { rows: [row], samples };
}
