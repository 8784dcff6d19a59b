// 2. Cold start: each tool against a port / endpoint that is already ready; whole-process wall time from
// spawn to exit. Also `safe-restart validate recipes/demo.yaml`, `safe-restart --version`, `check` from a copy
// of the build without its V8 code cache (what a Node other than the one that built it gets), and bare
// `node -e 0`: the floor every Node tool pays on this machine at this moment, which each row is compared with.
import { cpSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { measureCold } from '../lib/cold-measure.mjs';
import { DETECTION_TOOLS, oneDependencyRecipe } from '../lib/tools.mjs';
import { flippingHttp, openTcpPort } from '../lib/targets.mjs';
import { NODE, ROOT, SR, removeDir, tempDir } from '../lib/util.mjs';

export async function cold({ trials, random, log }) {
  const dir = tempDir('cold');
  const tcp = await openTcpPort();
  const web = await flippingHttp(0, { ready: true });
  const url = `http://127.0.0.1:${web.port}/healthz`;
  const tcpTarget = { kind: 'tcp', port: tcp.port, recipe: oneDependencyRecipe(dir, 'cold-tcp', `tcp: 127.0.0.1:${tcp.port}`) };
  const httpTarget = { kind: 'http', port: web.port, url, recipe: oneDependencyRecipe(dir, 'cold-http', `http: ${url}`) };
  const noCache = withoutCodeCache(dir);
  const jobs = [
    ...DETECTION_TOOLS.map((t) => ({ id: `${t.id} tcp`, argv: t.argv(tcpTarget) })),
    ...DETECTION_TOOLS.filter((t) => t.id === 'safe-restart' || t.id === 'curl-loop').map((t) => ({ id: `${t.id} http`, argv: t.argv(httpTarget) })),
    { id: 'safe-restart tcp, no code cache', argv: [NODE, [noCache, 'check', tcpTarget.recipe]] },
    { id: 'safe-restart validate demo.yaml', argv: [NODE, [SR, 'validate', join(ROOT, 'recipes', 'demo.yaml')]], env: { DEMO_DIR: dir } },
    { id: 'safe-restart --version', argv: [NODE, [SR, '--version']] },
    { id: 'node -e 0', argv: [NODE, ['-e', '0']] },
  ].filter((j) => j.argv);
  try {
    return await measureCold(jobs, { trials, random, dir, floorId: 'node -e 0', log });
  } finally {
    await tcp.close();
    await web.close();
    await removeDir(dir);
  }
}

/** A copy of the measured build (bin/ → ../dist/bundle/) without dist/bundle/cli.cjs.cache; returns its bin. */
function withoutCodeCache(dir) {
  const build = dirname(dirname(SR));
  const copy = join(dir, 'build-without-code-cache');
  for (const entry of ['bin', 'dist', 'package.json', 'node_modules']) cpSync(join(build, entry), join(copy, entry), { recursive: true, verbatimSymlinks: true });
  rmSync(join(copy, 'dist', 'bundle', 'cli.cjs.cache'), { force: true });
  return join(copy, 'bin', 'safe-restart.js');
}
