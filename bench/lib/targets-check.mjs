// The targets of the performance issue, checked against one run's medians. Each entry says what was
// measured, the limit, and met / missed (null when the suite did not run or produced no number).

const row = (results, suite, pred) => results[suite]?.rows?.find(pred) ?? null;
const ratio = (peer, ours) => (peer != null && ours != null && ours > 0 ? Math.round((peer / ours) * 100) / 100 : null);

function target(id, description, measured, limit, met) {
  return { id, description, measured, limit, met: measured === null || measured === undefined || limit === 'info' ? null : met };
}

export function evaluateTargets(results) {
  const out = [];
  if (results.detect) {
    for (const kind of ['tcp', 'http']) {
      const sr = row(results, 'detect', (r) => r.tool === 'safe-restart' && r.kind === kind);
      const wo = row(results, 'detect', (r) => r.tool === 'wait-on' && r.kind === kind);
      const wo50 = row(results, 'detect', (r) => r.tool === 'wait-on-i50' && r.kind === kind);
      const m = sr?.latency?.median ?? null;
      const p90 = sr?.latency?.p90 ?? null;
      out.push(target(`detect.${kind}.median`, `${kind} detection latency median (defaults)`, m, '≤ 30 ms', m !== null && m <= 30));
      out.push(target(`detect.${kind}.p90`, `${kind} detection latency p90 (defaults)`, p90, '≤ 60 ms', p90 !== null && p90 <= 60));
      const r = ratio(wo?.latency?.median, m);
      out.push(target(`detect.${kind}.vs-wait-on`, `${kind}: wait-on (defaults) median / safe-restart median`, r, '≥ 3×', r !== null && r >= 3));
      const r50 = ratio(wo50?.latency?.median, m);
      out.push(target(`detect.${kind}.vs-wait-on-i50`, `${kind}: wait-on -i 50 median / safe-restart median`, r50, '> 1×', r50 !== null && r50 > 1));
      out.push(target(`detect.${kind}.false-ready`, `${kind}: safe-restart false "ready"`, sr ? sr.falseReady : null, '0', sr?.falseReady === 0));
    }
  }
  if (results.idle) {
    const sr = results.idle.rows.find((r) => r?.tool === 'safe-restart');
    const wo = results.idle.rows.find((r) => r?.tool === 'wait-on');
    // "without a busy loop": the issue asks for the number, it sets no limit
    out.push(target('idle.cpu-per-60s', 'CPU time a 60 s wait costs (extrapolated, ms)', sr?.cpuMsPer60s ?? null, 'info', null));
    out.push(target('idle.cpu-vs-wait-on', 'CPU of that wait / wait-on (defaults) doing the same', ratio(sr?.cpuMsPer60s, wo?.cpuMsPer60s), 'info', null));
  }
  if (results.cold) {
    const find = (id) => row(results, 'cold', (r) => r.id === id);
    const wall = (id) => find(id)?.wall?.median ?? null;
    const check = wall('safe-restart tcp');
    out.push(target('cold.check', 'cold start: check on an open port', check, '≤ 150 ms', check !== null && check <= 150));
    out.push(target('cold.check.vs-wait-port', 'cold start: wait-port / safe-restart check', ratio(wall('wait-port tcp'), check), '> 1×', (ratio(wall('wait-port tcp'), check) ?? 0) > 1));
    out.push(target('cold.check.vs-wait-on', 'cold start: wait-on / safe-restart check', ratio(wall('wait-on tcp'), check), '> 1×', (ratio(wall('wait-on tcp'), check) ?? 0) > 1));
    const v = wall('safe-restart --version');
    out.push(target('cold.version', 'cold start: --version', v, '≤ 100 ms', v !== null && v <= 100));
    // what no Node CLI can go below on this machine right now: the item "cold start below wait-port" sets
    // its limits above it, per trial (each command minus `node -e 0` of the same trial, median over trials)
    const floor = wall('node -e 0');
    out.push(target('cold.node-floor', 'cold start: bare `node -e 0` (floor, for reference)', floor, 'info', null));
    const over = (id) => find(id)?.overFloor?.median ?? null;
    const co = over('safe-restart tcp');
    out.push(target('cold.check-over-floor', 'cold start: check − node floor (per trial)', co, '≤ 30 ms', co !== null && co <= 30));
    const vo = over('safe-restart --version');
    out.push(target('cold.version-over-floor', 'cold start: --version − node floor (per trial)', vo, '≤ 10 ms', vo !== null && vo <= 10));
    out.push(target('cold.wait-port-over-floor', 'cold start: wait-port − node floor (per trial)', over('wait-port tcp'), 'info', null));
    out.push(target('cold.check-no-cache-over-floor', 'cold start: check without code cache − node floor (per trial)', over('safe-restart tcp, no code cache'), 'info', null));
  }
  if (results.restart) {
    for (const id of ['safe-restart', 'safe-restart-release']) {
      const r = row(results, 'restart', (x) => x.method === id);
      if (!r) continue;
      const o = r.overheadMs?.median ?? null;
      out.push(target(`restart.${id}.overhead`, `${id}: own overhead (wall − stop − warm-up)`, o, '≤ 150 ms', o !== null && o <= 150));
      const g = r.gapOverServiceMs?.median ?? null;
      out.push(target(`restart.${id}.gap`, `${id}: longest gap − (stop + warm-up)`, g, '≤ 100 ms', g !== null && g <= 100));
      const lies = r.returnedBeforeListening + (r.exitCodes.some((c) => c !== 0) ? 1 : 0);
      out.push(target(`restart.${id}.false-ready`, `${id}: exited 0 before the service listened, or failed`, lies, '0', lies === 0));
    }
  }
  if (results.rollback) {
    const r = results.rollback.rows[0];
    const o = r.overheadMs?.median ?? null;
    out.push(target('rollback.overhead', 'rollback time − previous release warm-up', o, '≤ 200 ms', o !== null && o <= 200));
  }
  if (results.scale) {
    const r = results.scale.rows[0];
    const a = r.afterSlowestMs?.median ?? null;
    out.push(target('scale.after-slowest', '500 deps: all-ready − slowest ready', a, '≤ 300 ms', a !== null && a <= 300 && r.allOk));
    const rss = r.peakRssMb?.max ?? null;
    out.push(target('scale.peak-rss', '500 deps: peak RSS (max over trials)', rss, '≤ 150 MB', rss !== null && rss <= 150));
  }
  if (results.strategies) {
    // README › Blue/green and rolling: "a restart — and a rollback — fails no request" (max over trials; every
    // trial must have run, and exited as expected)
    for (const id of ['blue_green', 'blue_green-nginx', 'rolling', 'blue_green-rollback']) {
      const r = row(results, 'strategies', (x) => x.scenario === id);
      if (!r) continue;
      const f = r.failed?.max ?? null;
      const clean = r.errors === 0 && r.exitCodes.length === 1 && r.exitCodes[0] === (r.rollback ? 2 : 0);
      out.push(target(`strategies.${id}.failed`, `${r.label} (${r.lb}): failed requests, max over trials`, f, '0', f === 0 && clean));
    }
  }
  return out;
}
