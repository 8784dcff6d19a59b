// Kill what a dead run left behind: the process groups it recorded, verified to still be the same, and
// processes it started but died before recording (found by SAFE_RESTART_RUN_ID in their environment).
import { readdirSync, readFileSync } from 'node:fs';
import { killGroup, killPid, groupMembers, readProcStat, waitForGroupGone, waitUntil } from '../process/group.js';
import type { Journal, JournalDigest } from './journal.js';
import { procStartTime } from './lock.js';

/**
 * A recorded group is killed only when it still has members and its leader is either gone or
 * provably the same process (same start time): a pid number alone may have been reused.
 * Daemons spawned by `spawn` are the service itself and are left to the stop step.
 */
export async function killRecordedGroups(dead: JournalDigest, journal: Journal): Promise<number[]> {
  const killed: number[] = [];
  for (const child of dead.children) {
    if (child.action === 'spawn') continue;
    const members = groupMembers(child.pgid);
    if (members.length === 0) continue;
    const leaderStart = procStartTime(child.pgid);
    if (leaderStart !== null && child.startTime !== null && leaderStart !== child.startTime) continue;
    journal.write({ type: 'intent', phase: 'recover_kill', action: 'kill-group', detail: `SIGKILL process group ${child.pgid} left by run ${dead.runId} (${child.action})` });
    killGroup(child.pgid, 'SIGKILL');
    const gone = await waitForGroupGone(child.pgid, 5_000);
    journal.write({ type: 'done', phase: 'recover_kill', action: 'kill-group', ok: gone, durationMs: 0, detail: gone ? 'gone' : 'still present after 5s' });
    killed.push(child.pgid);
  }
  // a SIGKILL between spawn() and the pidfile or journal write leaves a child nobody recorded: it still carries the run id
  const recorded = new Set(dead.children.filter((c) => c.action === 'spawn').map((c) => c.pid));
  const orphans = startedByRun(dead.runId).filter((pid) => !recorded.has(pid) && !killed.includes(readProcStat(pid)?.pgid ?? -1));
  for (const pid of orphans) {
    const stat = readProcStat(pid);
    if (!stat) continue;
    journal.write({ type: 'intent', phase: 'recover_kill', action: 'kill-unrecorded', detail: `SIGKILL pid ${pid} started by run ${dead.runId} but never recorded` });
    const leads = stat.pgid === pid;
    if (leads) killGroup(pid, 'SIGKILL');
    else killPid(pid, 'SIGKILL');
    const gone = await waitUntil(() => (leads ? groupMembers(pid).length === 0 : readProcStat(pid)?.startTicks !== stat.startTicks), 5_000);
    journal.write({ type: 'done', phase: 'recover_kill', action: 'kill-unrecorded', ok: gone, durationMs: 0, detail: gone ? 'gone' : 'still present after 5s' });
    killed.push(pid);
  }
  return killed;
}

/** Live processes whose environment has SAFE_RESTART_RUN_ID=runId (every step and daemon of that run gets it). */
function startedByRun(runId: string): number[] {
  const needle = `\0SAFE_RESTART_RUN_ID=${runId}\0`;
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (`\0${readFileSync(`/proc/${entry}/environ`, 'latin1')}`.includes(needle) && readProcStat(Number(entry))?.state !== 'Z') found.push(Number(entry));
    } catch {
      // gone, or not ours to read
    }
  }
  return found;
}
