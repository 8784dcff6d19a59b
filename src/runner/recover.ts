// Kill what a dead run left behind: only process groups it recorded, verified to still be the same.
import { killGroup, groupMembers, waitForGroupGone } from '../process/group.js';
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
  return killed;
}
