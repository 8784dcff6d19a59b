// Cold-start measurement shared by suites/cold.mjs and cold-options.mjs: every job once per trial, in a
// random order per trial, each under /usr/bin/time (CPU and peak RSS). One job is the floor (`node -e 0`);
// each job's excess over it is taken within the same trial and then the median over trials, so a neighbour
// slowing one trial down moves both numbers of that trial, not the comparison.
import { join } from 'node:path';
import { readTimeFile, run, shuffle, summarize } from './util.mjs';

/**
 * jobs: [{ id, argv: [cmd, args], env? }]; floorId: the id of the floor job.
 * Returns { rows: [{ id, wall, cpu, rssMb, overFloor, xFloor, failures }], samples }.
 */
export async function measureCold(jobs, { trials, random, dir, floorId, log = () => {}, label = 'cold' }) {
  const samples = [];
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
    log(`${label}: trial ${i + 1}/${trials} done`);
  }
  const floorByTrial = new Map(samples.filter((s) => s.id === floorId && s.exitCode === 0).map((s) => [s.trial, s.wallMs]));
  const floorMedian = summarize([...floorByTrial.values()]).median;
  const rows = jobs.map((j) => {
    const mine = samples.filter((s) => s.id === j.id);
    const ok = mine.filter((s) => s.exitCode === 0);
    const wall = summarize(ok.map((s) => s.wallMs));
    return {
      id: j.id,
      wall,
      cpu: summarize(ok.map((s) => s.cpuMs)),
      rssMb: summarize(ok.map((s) => s.rssMb)),
      // per trial: this job's wall time − the floor's in the same trial
      overFloor: summarize(ok.filter((s) => floorByTrial.has(s.trial)).map((s) => s.wallMs - floorByTrial.get(s.trial))),
      xFloor: wall.median !== null && floorMedian ? Math.round((wall.median / floorMedian) * 100) / 100 : null,
      failures: mine.length - ok.length,
    };
  });
  return { rows, samples };
}
