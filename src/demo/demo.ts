// `safe-restart demo`: real restarts of a bundled service in a temp dir — v1→v2 succeeds,
// v2→v3 fails its gates and rolls back to v2 — then every process is cleaned up.
import { mkdtemp, mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SERVICE_SOURCE } from './service.js';
import { packageRoot } from '../package-root.js';
import { loadRecipeText } from '../recipe/load.js';
import { runRestart, newRunId } from '../runner/run.js';
import { spawnDaemon } from '../process/daemon.js';
import { stopByPidfile } from '../process/stop.js';
import { pollCheck } from '../poll.js';
import type { EventSink } from '../report/events.js';

export interface DemoIo {
  out: (text: string) => void;
  emitFor: (runId: string) => Promise<EventSink>;
  env: NodeJS.ProcessEnv;
  nodePath: string;
  onSignal: (handler: (signal: NodeJS.Signals) => void) => () => void;
  keep?: boolean;
}

export interface DemoResult {
  ok: boolean;
  steps: Array<{ title: string; exitCode: number; expected: number }>;
  dir: string;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export const DEMO_RECIPE = join(packageRoot(), 'recipes', 'demo.yaml');

export async function runDemo(io: DemoIo): Promise<DemoResult> {
  const dir = await mkdtemp(join(tmpdir(), 'safe-restart-demo-'));
  const port = await freePort();
  const depPort = await freePort();
  let dependency: Server | null = null;
  const steps: DemoResult['steps'] = [];
  const recipeText = await readFile(DEMO_RECIPE, 'utf8');
  const vars = { DEMO_DIR: dir, DEMO_PORT: String(port), DEMO_DEP_PORT: String(depPort), DEMO_NODE: io.nodePath };
  const { recipe, redactor } = loadRecipeText(recipeText, join(dir, 'demo.yaml'), { vars, env: io.env });
  const pidfile = join(dir, 'run', 'web.pid');
  try {
    for (const release of ['v1', 'v2', 'v3']) {
      const rdir = join(dir, 'releases', release);
      await mkdir(rdir, { recursive: true });
      await writeFile(join(rdir, 'server.mjs'), SERVICE_SOURCE);
      await writeFile(join(rdir, 'RELEASE'), `${release}\n`);
      if (release === 'v3') await writeFile(join(rdir, 'BROKEN'), 'the health endpoint of this release fails\n');
    }
    await mkdir(join(dir, 'run'), { recursive: true });
    await mkdir(join(dir, 'log'), { recursive: true });
    await writeFile(join(dir, 'demo.yaml'), recipeText);

    io.out(`safe-restart demo in ${dir}\n`);
    io.out(`  service: releases v1, v2 (healthy) and v3 (its /healthz answers 503), on 127.0.0.1:${port}\n`);
    io.out(`  fake dependency: 127.0.0.1:${depPort}\n\nThe recipe (${join(dir, 'demo.yaml')}; also recipes/demo.yaml):\n\n`);
    io.out(`${recipeText.replace(/^/gm, '    ')}\n`);

    dependency = createServer((socket) => socket.end());
    await new Promise<void>((resolve) => dependency?.listen(depPort, '127.0.0.1', resolve));

    // v1 is what "production" runs before the demo's restarts
    await symlink(join(dir, 'releases', 'v1'), join(dir, 'current'));
    const start = recipe.service.kind === 'commands' && recipe.service.start.kind === 'spawn' ? recipe.service.start : null;
    if (!start) throw new Error('demo recipe must use spawn');
    await spawnDaemon({ argv: start.argv, cwd: join(dir, 'releases', 'v1'), env: start.env, log: start.log, pidfile: start.pidfile });
    const gate = recipe.gates[0];
    if (!gate) throw new Error('demo recipe must have a gate');
    const ready = await pollCheck({ ...gate, successThreshold: 1, stableForMs: 0 });
    if (ready.status !== 'ready') throw new Error(`demo v1 did not come up: ${ready.error?.message}`);
    io.out(`v1 is serving on 127.0.0.1:${port}.\n`);

    const plan: Array<{ title: string; release: string; expected: number }> = [
      { title: 'restart v1 → v2 (healthy)', release: 'v2', expected: 0 },
      { title: 'restart v2 → v3 (broken health endpoint: gates fail, automatic rollback to v2)', release: 'v3', expected: 2 },
    ];
    const stateDir = join(dir, 'state');
    for (const item of plan) {
      io.out(`\n━━ ${item.title}\n$ safe-restart run demo.yaml --release ${item.release} --state-dir ${stateDir}\n\n`);
      const runId = newRunId();
      const summary = await runRestart({
        recipe,
        redact: (t) => redactor.redact(t),
        stateDir,
        release: item.release,
        env: io.env,
        emit: await io.emitFor(runId),
        onSignal: io.onSignal,
        runId,
        reason: 'safe-restart demo',
      });
      steps.push({ title: item.title, exitCode: summary.exitCode, expected: item.expected });
    }
    const after = await pollCheck({ ...gate, successThreshold: 1, stableForMs: 0, timeoutMs: 3_000 });
    const serving = after.last?.http?.bodySnippet.trim() ?? after.error?.message ?? 'nothing';
    io.out(`\nNow serving: ${serving}\n`);
    const ok = steps.every((s) => s.exitCode === s.expected) && /ok v2/.test(serving);
    io.out(
      `\nDemo ${ok ? 'worked' : 'did NOT go as expected'}:\n${steps.map((s) => `  ${s.exitCode === s.expected ? '✓' : '✗'} ${s.title}: exit ${s.exitCode} (expected ${s.expected})`).join('\n')}\n`,
    );
    return { ok, steps, dir };
  } finally {
    await stopByPidfile({ pidfile, signal: 'SIGTERM', graceMs: 3_000, timeoutMs: 6_000 }).catch(() => undefined);
    await new Promise<void>((resolve) => (dependency ? dependency.close(() => resolve()) : resolve()));
    if (!io.keep) await rm(dir, { recursive: true, force: true });
    io.out(io.keep ? `\nKept ${dir} (journals under state/).\n` : '\nCleaned up: service stopped, temp dir removed.\n');
  }
}
