// kill -9 of a rolling run over 3 instances behind a real HAProxy, at a chosen record of its journal, under 200 req/s
// of our own load: the next run refuses (exit 4, naming recover), and `recover` brings every instance to one good
// release, gated and UP in rotation, none left in drain or maint. A kill leaves at most the instance being updated
// out of rotation and the others UP, so not one request may fail — through the kill and the recover.
import { readlinkSync } from 'node:fs';
import { basename, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startLoad } from '../support/load.js';
import { HAVE_HAPROXY, journalSoFar, killWhenJournal, lbStatus, openIntents, rollingWorld, slotHealth, slotPid, strategySandbox, summary, underCi, watchOutOfRotation, zeroFailed, type JournalLine } from './world.js';

if (!HAVE_HAPROXY) console.warn(`rolling recover tests ${underCi ? 'FAIL under CI=true' : 'skipped'}: install Debian's haproxy`);

const setup = strategySandbox();

const nth = (records: JournalLine[], pred: (r: JournalLine) => boolean, n: number) => records.filter(pred).length >= n;
const spawnedIn = (phase: string) => (r: JournalLine) => r.type === 'done' && r.phase === phase && r.action === 'spawn' && r.ok === true;

interface Point {
  /** the release the killed run rolls out */
  release: 'v2' | 'v3';
  extra?: string;
  /** the journal record to be killed at */
  at: (r: JournalLine, all: JournalLine[]) => boolean;
  /** what the journal must not show yet: proof the kill landed where it was meant to */
  notYet: (r: JournalLine) => boolean;
  /** the release recover must converge on */
  good: 'v1' | 'v2';
}

const POINTS: Record<string, Point> = {
  // b drained (a already on v2 and UP, c untouched): the next thing would have been b's stop
  'mid-instance-2 after its drain': {
    release: 'v2',
    at: (r) => r.type === 'done' && r.phase === 'rollout' && r.action === 'lb-drain b' && r.ok === true,
    notYet: (r) => r.type === 'intent' && r.action === 'link b',
    good: 'v1',
  },
  // b started on v2 and being gated (its warm-up alone outlasts the kill)
  "during instance 2's gates": {
    release: 'v2',
    at: (_r, all) => nth(all, spawnedIn('rollout'), 2),
    notYet: (r) => r.type === 'intent' && r.action === 'lb-ready b',
    good: 'v1',
  },
  // b gated on v2 and put back into rotation, waited UP
  "during instance 2's way back in (ready, wait UP)": {
    release: 'v2',
    at: (r) => r.type === 'intent' && r.phase === 'rollout' && r.action === 'lb-ready b',
    notYet: (r) => r.type === 'intent' && r.action === 'lb-drain c',
    good: 'v1',
  },
  // v3 dies right after it starts (a's gates fail at once): the way back has stopped a and pointed it at v1 again
  'during the rollback_rollout of a bad release': {
    release: 'v3',
    at: (r) => r.type === 'intent' && r.phase === 'rollback_rollout' && r.action === 'spawn',
    notYet: () => false,
    good: 'v1',
  },
  // the rollout finished (every instance on v2, gated, UP): the journal proves the fleet reached the target
  'during the bake, after the whole rollout': {
    release: 'v2',
    extra: '    bake: 20s',
    at: (r) => r.type === 'phase' && r.phase === 'bake' && r.status === 'started',
    notYet: (r) => r.type === 'phase' && r.phase === 'bake' && r.status === 'finished',
    good: 'v2',
  },
};

describe.skipIf(!HAVE_HAPROXY && !underCi)('rolling: kill -9 of safe-restart during the rollout, then recover', () => {
  it.each(Object.keys(POINTS))('killed %s: the next run says recover; recover puts every instance on one good release, all UP, 0 failed', async (name) => {
    const point = POINTS[name] as Point;
    const { s, instances, lb, front, file } = await rollingWorld(setup, { v1: {}, v2: {}, v3: { exitAfterMs: 150 } }, point.extra);
    const load = startLoad({ url: `http://127.0.0.1:${front}/`, rate: 200, mode: 'mixed', maxDurationMs: 60_000, timeoutMs: 2_000 });
    const out = watchOutOfRotation(lb);
    try {
      await new Promise((res) => setTimeout(res, 300));
      const run = s.start(['run', file, '--release', point.release]);
      const left = await killWhenJournal(s, run, point.at);
      expect(left.filter(point.notYet), 'the kill landed where it was meant to').toEqual([]);
      const pidsAtKill = instances.map((i) => slotPid(s, i.name));

      const blocked = await s.cli(['run', file, '--release', point.release]);
      expect(blocked.code, blocked.stderr + blocked.stdout.slice(-1000)).toBe(4);
      expect(blocked.stderr + blocked.stdout).toMatch(/run `safe-restart recover /);

      const r = await s.cli(['recover', file]);
      expect(r.code, r.stderr + r.stdout.slice(-3000)).toBe(2);
      expect(summary(r)).toMatchObject({ outcome: 'rolled_back', targetRelease: point.good });
      await new Promise((res) => setTimeout(res, 300));
      const report = await load.stop();
      zeroFailed(report);
      // max_unavailable 1, through the kill and the recover: never two instances out of rotation at once
      const seen = await out.stop();
      expect(seen.samples).toBeGreaterThan(10);
      expect(seen.maxOut, JSON.stringify(seen.worst)).toBe(1);

      // every instance runs the good release from its own link, and the process answering on its port is the one its
      // pidfile names (not one the dead run started and never recorded), UP in rotation
      for (const i of instances) {
        expect(basename(readlinkSync(join(s.dir, 'slots', i.name))), i.name).toBe(point.good);
        expect(slotHealth(i.port), i.name).toBe(`ok ${point.good} ${slotPid(s, i.name)}`);
      }
      expect(await lbStatus(lb)).toEqual({ a: 'UP', b: 'UP', c: 'UP' });
      expect(s.currentRelease()).toBe(point.good);
      // every load-balancer (and other) change of the recover has its intent and its done
      expect(openIntents(journalSoFar(s, summary(r).journal))).toEqual([]);
      // a fleet that had reached the target is left as it is: nothing restarted
      if (point.good === point.release) expect(instances.map((i) => slotPid(s, i.name))).toEqual(pidsAtKill);

      // the dead run is accounted for
      const again = await s.cli(['recover', file], { json: false });
      expect(again.code, again.stdout + again.stderr).toBe(0);
      expect(again.stdout).toMatch(/^nothing to recover: the last run of svc finished \(rolled_back \(recover\)/);
    } finally {
      await Promise.all([load.stop(), out.stop()]);
    }
  });
});
