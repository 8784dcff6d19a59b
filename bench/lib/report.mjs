// The human table: one block per suite, medians (p90) in ms, ratios to safe-restart, then the targets.

const fmt = (v, unit = '') => (v === null || v === undefined ? '—' : `${Math.round(v)}${unit}`);
const mp = (s) => (s?.n ? `${fmt(s.median)} (${fmt(s.p90)})` : '—');
// median (max)
const mm = (s) => (s?.n ? `${fmt(s.median)} (${fmt(s.max)})` : '—');
const x = (peer, ours) => (peer != null && ours != null && ours > 0 ? `${(peer / ours).toFixed(1)}×` : '—');

function table(header, rows) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i] ?? '').length)));
  const line = (cells) => cells.map((c, i) => String(c ?? '').padEnd(widths[i])).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

export function printReport({ machine, plan, targets, results }) {
  const out = [];
  out.push(
    `safe-restart benchmark · ${machine.date} · ${machine.nproc} × ${machine.cpuModel} · node ${machine.node} · ` +
      `load ${machine.loadavgAtStart.join('/')} → ${machine.loadavgAtEnd.join('/')} · seed ${plan.seed} · ${machine.durationS} s`,
    '',
  );

  if (results.detect) {
    const byTool = new Map();
    for (const r of results.detect.rows) byTool.set(r.tool, { ...byTool.get(r.tool), label: r.label, [r.kind]: r });
    const sr = byTool.get('safe-restart');
    const rows = [...byTool.entries()].map(([, t]) => [
      t.label,
      mp(t.tcp?.latency),
      fmt(t.tcp?.latency?.max),
      t.tcp ? x(t.tcp.latency.median, sr?.tcp?.latency?.median) : '—',
      t.http ? (t.http.latency.n ? mp(t.http.latency) : '—') : '—',
      fmt(t.http?.latency?.max),
      t.http ? x(t.http.latency.median, sr?.http?.latency?.median) : '—',
      t.http ? `${t.http.falseReady}/${t.http.trials}` : '—',
      t.http?.latencyWhilePolling?.n ? `${mp(t.http.latencyWhilePolling)} [${t.http.latencyWhilePolling.n}]` : '—',
      (t.tcp?.failures ?? 0) + (t.http?.failures ?? 0),
    ]);
    out.push(
      `1. Detection latency, ms: exit − port opened / endpoint 503→200 (${plan.trials} trials, ready 300–800 ms after start)`,
      table(['tool', 'TCP med (p90)', 'max', 'vs sr', 'HTTP med (p90)', 'max', 'vs sr', 'HTTP false-ready', 'HTTP already polling: med (p90) [n]', 'errors'], rows),
      '',
    );
  }
  if (results.idle) {
    out.push(
      `   CPU while waiting (port never opens, ${results.idle.seconds} s measured, start-up subtracted, ×60/s):`,
      ...results.idle.rows.filter(Boolean).map((r) => `   ${r.tool}: ${r.cpuMsPerSecond} ms CPU per s waited → ${r.cpuMsPer60s} ms per 60 s (${r.cpuPct} % of a core)`),
      '',
    );
  }
  if (results.cold) {
    const check = results.cold.rows.find((r) => r.id === 'safe-restart tcp')?.wall?.median;
    out.push(
      `2. Cold start, ms: whole process, target already ready (${plan.trials} trials; − node: minus \`node -e 0\` in the same trial)`,
      table(
        ['command', 'wall med (p90)', 'max', '− node med (p90)', '× node', 'vs sr check', 'CPU med (p90)', 'peak RSS MB', 'errors'],
        results.cold.rows.map((r) => [
          r.id,
          mp(r.wall),
          fmt(r.wall.max),
          r.overFloor?.n ? mp(r.overFloor) : '—',
          r.xFloor == null ? '—' : `${r.xFloor.toFixed(2)}×`,
          x(r.wall.median, check),
          mp(r.cpu),
          fmt(r.rssMb?.median),
          r.failures,
        ]),
      ),
      '',
    );
  }
  if (results.restart) {
    out.push(
      `3. Restart under ~200 req/s, service warm-up 400 ms (${plan.restartTrials} trials, medians)`,
      table(
        ['method', 'requests', 'failed', 'failed %', 'longest gap', 'gap − (stop+warm-up)', 'wall', 'stop', 'warm-up', 'wall − stop − warm-up', 'returned before up', 'exit'],
        results.restart.rows.map((r) => [
          r.label,
          fmt(r.requests.median),
          fmt(r.failed.median),
          r.failedPct.median ?? '—',
          fmt(r.longestGapMs.median),
          fmt(r.gapOverServiceMs.median),
          fmt(r.wallMs.median),
          fmt(r.stopMs.median),
          fmt(r.warmupMs.median),
          fmt(r.overheadMs.median),
          `${r.returnedBeforeListening}/${r.trials}`,
          r.exitCodes.join(','),
        ]),
      ),
      '',
    );
  }
  for (const r of results.restart?.rows ?? []) {
    if (!r.breakdown) continue;
    const b = r.breakdown;
    out.push(
      `   ${r.label}: process start → first event ${mp(b.processStartToFirstEventMs)} · → SIGTERM to the service ${mp(b.processStartToSigtermMs)} · ` +
        `old exit → new boot ${mp(b.oldExitToNewBootMs)} · gate ready after listening ${mp(b.gateReadyAfterListeningMs)} · exit after gate ${mp(b.exitAfterGateMs)}`,
    );
  }
  if (results.restart) out.push('');
  if (results.rollback) {
    const r = results.rollback.rows[0];
    out.push(
      `4. Rollback (gate deadline 2 s on a 503 release → previous release passing its gate again; ${r.trials} trials)`,
      `   rollback ${mp(r.rollbackMs)} ms · previous release warm-up ${mp(r.previousWarmupMs)} · rollback − warm-up ${mp(r.overheadMs)} · ` +
        `broken release stop ${mp(r.v3StopMs)} · gate seen ready ${mp(r.gateAfterListenMs)} after listening · exit ${r.exitCodes.join(',')}`,
      '',
    );
  }
  if (results.scale) {
    const r = results.scale.rows[0];
    out.push(
      `5. Scale: ${r.dependencies} dependencies (${r.late} late), ${r.trials} trials, all ready: ${r.allOk}`,
      `   exit − slowest ready ${mp(r.afterSlowestMs)} ms · peak RSS ${mp(r.peakRssMb)} MB · CPU ${mp(r.cpuMs)} ms`,
      '',
    );
  }
  if (results.strategies) {
    const st = results.strategies;
    const good = st.rows.filter((r) => !r.rollback);
    const bad = st.rows.filter((r) => r.rollback);
    const n = Math.max(0, ...st.rows.map((r) => r.trials));
    out.push(
      `6. Strategies under ~${st.setup.rate} req/s through the load balancer, v1 → v2 (every other request keep-alive, ${st.setup.requestTimeoutMs} ms timeout; ` +
        `${n} trials, median (max); failed by kind: medians)`,
      table(
        ['strategy', 'LB', 'requests', 'failed', '5xx', 'reset', 'refused', 'timeout', 'other', 'longest failure window ms', 'ok p99 / max latency ms', 'wall ms', 'exit', 'errors'],
        good.map((r) => [
          r.label,
          r.lb,
          fmt(r.requests.median),
          mm(r.failed),
          fmt(r.byKind['5xx'].median),
          fmt(r.byKind.reset.median),
          fmt(r.byKind.refused.median),
          fmt(r.byKind.timeout.median),
          fmt((r.byKind.other.median ?? 0) + (r.byKind['4xx'].median ?? 0) + (r.byKind.status.median ?? 0)),
          mm(r.longestFailureWindowMs),
          `${fmt(r.latencyP99Ms.median)} / ${fmt(r.latencyMaxMs.max)}`,
          fmt(r.wallMs.median),
          r.exitCodes.join(','),
          r.errors,
        ]),
      ),
      '',
      `   Rollback: a release whose /healthz turns 503 ${st.setup.failAfterMs} ms after it listens (/ keeps answering), during a ${st.setup.bakeMs / 1000} s bake (in place: the gate's stable_for), ms`,
      table(
        ['strategy', 'LB', 'failed', 'longest failure window', 'failure → rollback starts', 'switched back (summary)', 'failure → previous passing its gates', 'failure → previous serving through the LB', 'wall', 'exit', 'errors'],
        bad.map((r) => [
          r.label,
          r.lb,
          mm(r.failed),
          mm(r.longestFailureWindowMs),
          mm(r.failureToRollbackMs),
          r.switchedBackMs?.n ? mm(r.switchedBackMs) : '—',
          r.passingAgainMs?.n ? `${mm(r.passingAgainMs)}*` : r.switchedBackMs?.n ? 'never stopped' : '—',
          mm(r.oldServingAgainMs),
          fmt(r.wallMs.median),
          r.exitCodes.join(','),
          r.errors,
        ]),
      ),
      '   * its rollback gates ready − their stable_for: the moment they began to pass again (within one 50 ms interval)',
      '',
    );
  }
  if (targets.length) {
    out.push(
      'Targets',
      table(
        ['target', 'measured', 'limit', ''],
        targets.map((t) => [t.description, t.measured ?? '—', t.limit, t.limit === 'info' ? '' : t.met === null ? 'n/a' : t.met ? 'met' : 'MISSED']),
      ),
      '',
    );
  }
  return `${out.join('\n')}\n`;
}
