// 2. Cold start: each tool against a port / endpoint that is already ready; whole-process wall time from
// spawn to exit. Also `safe-restart validate recipes/demo.yaml`, `safe-restart --version` and bare `node -e 0`
// (the floor every Node tool pays on this machine at this moment). Each runs under /usr/bin/time for CPU and RSS.
import { join } from 'node:path';
import { DETECTION_TOOLS, oneDependencyRecipe } from '../lib/tools.mjs';
import { flippingHttp, openTcpPort } from '../lib/targets.mjs';
import { NODE, ROOT, SR, readTimeFile, removeDir, run, shuffle, summarize, tempDir } from '../lib/util.mjs';

export async function cold({ trials, random, log }) {
  const dir = tempDir('cold');
  const tcp = await openTcpPort();
  const web = await flippingHttp(0, { ready: true });
  const url = `http://127.0.0.1:${web.port}/healthz`;
  const tcpTarget = { kind: 'tcp', port: tcp.port, recipe: oneDependencyRecipe(dir, 'cold-tcp', `tcp: 127.0.0.1:${tcp.port}`) };
  const httpTarget = { kind: 'http', port: web.port, url, recipe: oneDependencyRecipe(dir, 'cold-http', `http: ${url}`) };
  const jobs = [
    ...DETECTION_TOOLS.map((t) => ({ id: `${t.id} tcp`, argv: t.argv(tcpTarget) })),
    ...DETECTION_TOOLS.filter((t) => t.id === 'safe-restart' || t.id === 'curl-loop').map((t) => ({ id: `${t.id} http`, argv: t.argv(httpTarget) })),
    { id: 'safe-restart validate demo.yaml', argv: [NODE, [SR, 'validate', join(ROOT, 'recipes', 'demo.yaml')]], env: { DEMO_DIR: dir } },
    { id: 'safe-restart --version', argv: [NODE, [SR, '--version']] },
    { id: 'node -e 0', argv: [NODE, ['-e', '0']] },
  ].filter((j) => j.argv);
  const samples = [];
  try {
    for (let i = 0; i < trials; i++) {
      for (const job of shuffle(jobs, random)) {
        const [cmd, args] = job.argv;
        // /usr/bin/time (a ~1 ms C wrapper, the same for every tool) reports CPU time and peak RSS: CPU time
        // moves far less than wall time when the machine is busy, so it is the steadier comparison
        const timeFile = join(dir, 'time.txt');
        const r = await run('/usr/bin/time', ['-o', timeFile, '-f', '%M %U %S', cmd, ...args], { env: job.env, timeoutMs: 15_000 }).done;
        const usage = readTimeFile(timeFile);
        samples.push({
          id: job.id,
          trial: i + 1,
          wallMs: Math.round(r.wallMs * 10) / 10,
          cpuMs: usage?.cpuMs ?? null,
          rssMb: usage ? Math.round(usage.rssKb / 102.4) / 10 : null,
          exitCode: r.code,
          stderr: r.code === 0 ? undefined : r.stderr.slice(-300),
        });
      }
      log(`cold: trial ${i + 1}/${trials} done`);
    }
  } finally {
    await tcp.close();
    await web.close();
    await removeDir(dir);
  }
  const rows = jobs.map((j) => {
    const mine = samples.filter((s) => s.id === j.id);
    const ok = mine.filter((s) => s.exitCode === 0);
    return {
      id: j.id,
      wall: summarize(ok.map((s) => s.wallMs)),
      cpu: summarize(ok.map((s) => s.cpuMs)),
      rssMb: summarize(ok.map((s) => s.rssMb)),
      failures: mine.length - ok.length,
    };
  });
  return { rows, samples };
}
