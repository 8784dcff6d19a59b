// 1. Detection latency: each tool starts waiting as a child process; at a random moment 300–800 ms later the
// harness opens the port (TCP) or flips the endpoint from 503 to 200 (HTTP) and timestamps it. Latency is the
// tool's exit − that moment. A tool that exits 0 before the moment declared ready falsely.
import { DETECTION_TOOLS, oneDependencyRecipe } from '../lib/tools.mjs';
import { flippingHttp, lateTcpPort } from '../lib/targets.mjs';
import { freeFixedPort, run, shuffle, sleep, summarize, tempDir, removeDir } from '../lib/util.mjs';

const TOOL_TIMEOUT_MS = 15_000;

async function trialTcp(tool, dir, random) {
  const port = await freeFixedPort();
  const target = lateTcpPort(port);
  const recipe = oneDependencyRecipe(dir, `tcp-${port}`, `tcp: 127.0.0.1:${port}`);
  const [cmd, args] = tool.argv({ kind: 'tcp', port, recipe });
  const delay = 300 + random() * 500;
  const proc = run(cmd, args, { timeoutMs: TOOL_TIMEOUT_MS });
  const opener = sleep(delay - (performance.now() - (proc.startedAt - performance.timeOrigin))).then(() => target.open());
  const result = await proc.done;
  const readyAt = await opener;
  await target.close();
  return verdict(tool, 'tcp', result, readyAt, delay);
}

async function trialHttp(tool, dir, random) {
  const target = await flippingHttp();
  const url = `http://127.0.0.1:${target.port}/healthz`;
  const recipe = oneDependencyRecipe(dir, `http-${target.port}`, `http: ${url}`);
  const [cmd, args] = tool.argv({ kind: 'http', port: target.port, url, recipe });
  const delay = 300 + random() * 500;
  const proc = run(cmd, args, { timeoutMs: TOOL_TIMEOUT_MS });
  const timer = setTimeout(() => target.flip(), delay - (performance.now() - (proc.startedAt - performance.timeOrigin)));
  const result = await proc.done;
  // a tool that exited before the flip: flip anyway, so the moment is recorded the same way
  clearTimeout(timer);
  const readyAt = target.flippedAt ?? target.flip();
  const served503 = target.served[503];
  await target.close();
  return { ...verdict(tool, 'http', result, readyAt, delay), served503 };
}

function verdict(tool, kind, result, readyAt, delay) {
  const ok = result.code === 0 && !result.timedOut;
  const falseReady = ok && result.exitedAt < readyAt;
  return {
    tool: tool.id,
    kind,
    delayMs: Math.round(delay),
    exitCode: result.code,
    timedOut: result.timedOut,
    falseReady,
    latencyMs: ok && !falseReady ? Math.round((result.exitedAt - readyAt) * 10) / 10 : null,
    wallMs: Math.round(result.wallMs),
    stderr: ok ? undefined : result.stderr.slice(-300),
  };
}

export async function detect({ trials, random, log }) {
  const dir = tempDir('detect');
  const samples = [];
  try {
    for (let i = 0; i < trials; i++) {
      const jobs = [];
      for (const tool of DETECTION_TOOLS) {
        jobs.push({ tool, kind: 'tcp' });
        jobs.push({ tool, kind: 'http' });
      }
      // interleaved: every trial runs every tool once, in a fresh random order
      for (const { tool, kind } of shuffle(jobs, random)) {
        if (!tool.argv({ kind, port: 1, url: 'http://127.0.0.1:1/', recipe: '' })) continue;
        const s = kind === 'tcp' ? await trialTcp(tool, dir, random) : await trialHttp(tool, dir, random);
        s.trial = i + 1;
        samples.push(s);
      }
      log(`detect: trial ${i + 1}/${trials} done`);
    }
  } finally {
    await removeDir(dir);
  }
  const rows = [];
  for (const tool of DETECTION_TOOLS) {
    for (const kind of ['tcp', 'http']) {
      const mine = samples.filter((s) => s.tool === tool.id && s.kind === kind);
      if (mine.length === 0) continue;
      rows.push({
        tool: tool.id,
        label: tool.label,
        kind,
        trials: mine.length,
        latency: summarize(mine.map((s) => s.latencyMs)),
        falseReady: mine.filter((s) => s.falseReady).length,
        // HTTP only: trials where the tool had sent at least one probe before the flip (it was already polling),
        // which separates detection from start-up time; the rest were still starting when the endpoint flipped
        ...(kind === 'http'
          ? {
              latencyWhilePolling: summarize(mine.filter((s) => s.served503 > 0).map((s) => s.latencyMs)),
              notYetPolling: mine.filter((s) => s.served503 === 0).length,
            }
          : {}),
        failures: mine.filter((s) => s.exitCode !== 0 || s.timedOut).length,
      });
    }
  }
  return { rows, samples };
}
