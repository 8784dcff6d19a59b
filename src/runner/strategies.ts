// blue/green and rolling behind a load balancer. The machine (machine.ts) gets each strategy's phase sequence
// from here; the phase actions below run one phase each through a small context, and journal an intent before
// every load-balancer change and a done after it. Invariant: a server is taken out of rotation only once another
// one is UP in the load balancer.
import { lstat, readlink, rename, symlink, unlink } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { mkdirSync } from 'node:fs';
import type { ReleaseSpec, ResolvedRecipe, SlotSpec, StrategySpec } from '../recipe/types.js';
import type { EventSink, Phase } from '../report/events.js';
import type { TrafficProvider } from '../traffic/provider.js';
import { digestJournal, readJournal, type NewRecord } from './journal.js';
import type { PhaseSequence } from './machine.js';
import { RELEASE_ID, releaseExists, switchSymlink } from './release.js';
import type { StateStore } from './state.js';

type BlueGreen = Extract<StrategySpec, { kind: 'blue_green' }>;
type Rolling = Extract<StrategySpec, { kind: 'rolling' }>;

export const BLUE_GREEN: PhaseSequence = {
  forward: ['resolve', 'dependencies', 'verify', 'before_stop', 'prepare', 'start', 'after_start', 'gates', 'switch', 'bake', 'on_success'],
  // before the switch traffic never saw the new slot: stopping it is the whole way back
  rollback: ['rollback_stop', 'on_rollback'],
  rollbackFor: { switch: ['switch_back', 'rollback_stop', 'on_rollback'], bake: ['switch_back', 'rollback_stop', 'on_rollback'] },
  firstTouching: 'prepare',
  keepsOld: true,
};

export const ROLLING: PhaseSequence = {
  forward: ['resolve', 'dependencies', 'verify', 'before_stop', 'rollout', 'bake', 'on_success'],
  rollback: ['rollback_rollout', 'on_rollback'],
  firstTouching: 'rollout',
};

// recover after a dead blue/green run: make exactly one healthy slot take traffic, the other out on purpose
export const RECOVER_BLUE_GREEN: PhaseSequence = { forward: ['resolve', 'converge', 'on_success'], rollback: [], firstTouching: 'converge' };

// recover after a dead rolling run: every instance on one good release, gated, back in rotation
export const RECOVER_ROLLING: PhaseSequence = { forward: ['resolve', 'converge', 'on_success'], rollback: [], firstTouching: 'converge' };

export function sequenceFor(strategy: StrategySpec, mode: 'run' | 'recover' = 'run'): PhaseSequence | undefined {
  if (mode === 'recover') return strategy.kind === 'blue_green' ? RECOVER_BLUE_GREEN : strategy.kind === 'rolling' ? RECOVER_ROLLING : undefined;
  return strategy.kind === 'blue_green' ? BLUE_GREEN : strategy.kind === 'rolling' ? ROLLING : undefined;
}

/** What a strategy phase may use of the run: one small context, no reach into the loop's own state. */
export interface StrategyContext {
  recipe: ResolvedRecipe;
  runId: string;
  journal: { write(record: NewRecord): void };
  emit: EventSink;
  redact: (t: string) => string;
  warnings: string[];
  store: StateStore;
  provider: TrafficProvider;
  /** --release */
  requested: string | undefined;
  /** which slot the next step or check is about (${SAFE_RESTART_SLOT}, ${SAFE_RESTART_PORT}) */
  setSlot(slot: SlotSpec | null): void;
  stopService(phase: Phase, release: string | null, signal: AbortSignal): Promise<string | null>;
  startService(phase: Phase, release: string | null, signal: AbortSignal): Promise<string | null>;
  /** the recipe's gates (watched), with stable_for stretched to `bakeMs` when baking */
  gates(phase: Phase, release: string | null, signal: AbortSignal, bakeMs?: number): Promise<string | null>;
  /** the longest gate timeout: how long a server may take to come UP in the load balancer */
  upTimeoutMs: number;
}

export interface Resolved {
  ok: boolean;
  reason?: string;
  previous: string | null;
  target: string | null;
}

/** A slot's release: the basename of its link's target, null when it has none yet. */
async function linkRelease(link: string): Promise<string | null> {
  try {
    const st = await lstat(link);
    if (!st.isSymbolicLink()) throw new Error(`${link} exists but is not a symbolic link: refusing to replace it`);
    return basename(resolve(dirname(link), await readlink(link)));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

async function pointLink(link: string, releasesDir: string, release: string, runId: string): Promise<string> {
  mkdirSync(dirname(link), { recursive: true });
  const target = resolve(releasesDir, release);
  const tmp = `${link}.safe-restart-${runId}`;
  await unlink(tmp).catch(() => undefined);
  await symlink(target, tmp);
  try {
    await rename(tmp, link);
  } catch (error) {
    await unlink(tmp).catch(() => undefined);
    throw error;
  }
  return `${link} -> ${target}`;
}

const LB_5XX_EVERY_MS = 200;

function seconds(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)}ms` : `${(ms / 1000).toFixed(1)}s`;
}

/** The state a strategy keeps between runs: which slot is live, which old slot waits to be stopped. */
export interface SlotsState {
  live: string | null;
  retiring: { slot: string; after: string } | null;
}

export function readSlots(store: StateStore, recipe: string): SlotsState {
  const raw = store.readExtra<SlotsState>(recipe, 'slots');
  return { live: raw?.live ?? null, retiring: raw?.retiring ?? null };
}

export class BlueGreenRun {
  live: SlotSpec | null = null;
  idle: SlotSpec;
  private previous: string | null = null;
  private target: string | null = null;

  constructor(private readonly ctx: StrategyContext, private readonly spec: BlueGreen) {
    this.idle = spec.slots[0];
  }

  private release(): Extract<ReleaseSpec, { kind: 'symlink' }> {
    const r = this.ctx.recipe.release;
    if (!r || r.kind !== 'symlink') throw new Error('blue_green needs release: { symlink, releases_dir } (rules.ts)');
    return r;
  }

  private lb(phase: Phase, action: string, detail: string): void {
    this.ctx.journal.write({ type: 'intent', phase, action, detail });
  }

  private lbDone(phase: Phase, action: string, ok: boolean, detail: string, startedAt: number): void {
    const durationMs = Math.round(performance.now() - startedAt);
    this.ctx.journal.write({ type: 'done', phase, action, ok, durationMs, detail });
    this.ctx.emit({ kind: 'step_finished', phase, step: action, ok, exitCode: null, durationMs, detail: this.ctx.redact(detail) });
  }

  /** Which slot is live, from the load balancer, cross-checked with what the state directory recorded. */
  async resolve(signal: AbortSignal): Promise<Resolved> {
    const fail = (reason: string): Resolved => ({ ok: false, reason, previous: this.previous, target: this.target });
    const seen = await this.ctx.provider.inspect(signal);
    for (const w of seen.warnings) this.ctx.warnings.push(w);
    if (!seen.ok) return fail(`${this.ctx.provider.label}: ${seen.reason ?? 'cannot be used'}`);
    const views = await this.ctx.provider.observe(signal);
    const recorded = readSlots(this.ctx.store, this.ctx.recipe.name).live;
    const inRotation = views.filter((v) => v.admin === 'ready' && v.status.startsWith('UP'));
    let live: string | null;
    if (inRotation.length === 1) live = inRotation[0]?.slot ?? null;
    else if (inRotation.length === 2) {
      if (!recorded || !inRotation.some((v) => v.slot === recorded)) return fail(`both slots take traffic in ${this.ctx.provider.label} and the state directory names neither – take one out (or fix the load balancer) so it is clear which one is live`);
      live = recorded;
      this.ctx.warnings.push(`both slots take traffic; the state directory says ${recorded} is live`);
    } else {
      const anyRelease = await Promise.all(this.spec.slots.map((s) => linkRelease(s.link)));
      if (recorded || anyRelease.some((r) => r !== null)) {
        return fail(`no slot is UP and in rotation in ${this.ctx.provider.label} (${views.map((v) => `${v.slot} ${v.status}/${v.admin}`).join(', ')}) – nothing to switch away from; bring the live slot back first`);
      }
      live = null;
    }
    if (live && recorded && live !== recorded) this.ctx.warnings.push(`the load balancer says ${live} is live, the state directory said ${recorded}: going by the load balancer`);
    this.live = this.spec.slots.find((s) => s.name === live) ?? null;
    this.idle = this.spec.slots.find((s) => s.name !== live) ?? this.spec.slots[0];
    this.previous = this.live ? await linkRelease(this.live.link) : null;
    if (this.ctx.requested !== undefined && !RELEASE_ID.test(this.ctx.requested)) return fail(`--release "${this.ctx.requested}" must match [A-Za-z0-9][A-Za-z0-9._-]*`);
    this.target = this.ctx.requested ?? this.previous;
    if (this.target === null) return fail('no slot has a release yet and no --release given');
    const exists = await releaseExists(this.release(), this.target);
    if (!exists.ok) return fail(`release ${this.target} not found: ${exists.detail}`);
    this.ctx.journal.write({ type: 'note', phase: 'resolve', detail: `live slot ${live ?? '(none: first run)'} on ${this.previous ?? 'no release'}; idle slot ${this.idle.name} gets ${this.target}` });
    return { ok: true, previous: this.previous, target: this.target };
  }

  describe(): string {
    return this.live ? `${this.live.name} (live) → ${this.idle.name}` : `first run on ${this.idle.name}`;
  }

  /** recover: the release to converge on is the last good one (else the dead run's PREVIOUS). */
  async resolveRecover(signal: AbortSignal, good: string | null): Promise<Resolved> {
    const seen = await this.ctx.provider.inspect(signal);
    if (!seen.ok) return { ok: false, reason: `${this.ctx.provider.label}: ${seen.reason ?? 'cannot be used'}`, previous: null, target: null };
    if (good === null) return { ok: false, reason: 'no release ever passed its gates and the unfinished run recorded no previous release – nothing known to be good to converge on', previous: null, target: null };
    const views = await this.ctx.provider.observe(signal);
    const live = views.find((v) => v.admin === 'ready' && v.status.startsWith('UP'))?.slot ?? readSlots(this.ctx.store, this.ctx.recipe.name).live;
    this.live = this.spec.slots.find((s) => s.name === live) ?? null;
    this.previous = this.live ? await linkRelease(this.live.link) : null;
    this.target = good;
    return { ok: true, previous: this.previous, target: good };
  }

  /**
   * Exactly one healthy slot takes traffic, the other is out on purpose (maint): the slot already running the good
   * release and passing the gates wins; else the recorded live one if healthy; else the good release is started in
   * a slot. The chosen one goes in and is waited UP before the other is taken out — never both out.
   */
  private async converge(phase: Phase, signal: AbortSignal): Promise<string | null> {
    const { ctx } = this;
    const good = this.target as string;
    ctx.journal.write({ type: 'note', phase, detail: `load balancer before recover:
${await ctx.provider.snapshot(signal)}` });
    const candidates: Array<{ slot: SlotSpec; release: string | null }> = [];
    for (const slot of this.spec.slots) candidates.push({ slot, release: await linkRelease(slot.link) });
    const rank = (c: { slot: SlotSpec; release: string | null }) => (c.release === good ? 0 : c.slot.name === this.live?.name ? 1 : 2);
    // gated in that order, the first healthy one wins: a broken slot's gates (their whole timeout) are waited out only
    // when no better slot passes, never while it is the one still taking the traffic
    let chosen: { slot: SlotSpec; release: string | null } | null = null;
    for (const c of candidates.filter((x) => x.release !== null).sort((x, y) => rank(x) - rank(y))) {
      ctx.setSlot(c.slot);
      const failure = await ctx.gates(phase, c.release, signal);
      if (failure === null) {
        chosen = c;
        break;
      }
      ctx.journal.write({ type: 'note', phase, detail: `slot ${c.slot.name} (${c.release}) does not pass its gates: ${failure}` });
    }
    if (!chosen) {
      // nothing healthy: start the good release in a slot, the way a run would
      const slot = this.spec.slots.find((s) => s.name !== this.live?.name) ?? this.spec.slots[0];
      ctx.setSlot(slot);
      const stopped = await ctx.stopService(phase, null, signal);
      if (stopped) return `recover: stopping slot ${slot.name}: ${stopped}`;
      await pointLink(slot.link, this.release().releasesDir, good, ctx.runId);
      const started = await ctx.startService(phase, good, signal);
      if (started) return `recover: starting ${good} in slot ${slot.name}: ${started}`;
      const gated = await ctx.gates(phase, good, signal);
      if (gated) return `recover: ${good} in slot ${slot.name} does not pass its gates: ${gated}`;
      chosen = { slot, release: good };
    }
    const other = this.spec.slots.find((s) => s.name !== chosen?.slot.name) as SlotSpec;
    ctx.setSlot(chosen.slot);
    let t = performance.now();
    this.lb(phase, 'lb-ready', `${chosen.slot.name}: → ready (recover)`);
    await ctx.provider.set(chosen.slot.name, 'ready', signal);
    const up = await ctx.provider.waitUp(chosen.slot.name, ctx.upTimeoutMs, signal);
    this.lbDone(phase, 'lb-ready', up.ok, up.detail, t);
    if (!up.ok) return `recover: ${chosen.slot.name} did not come UP in ${ctx.provider.label}: ${up.detail}`;
    t = performance.now();
    this.lb(phase, 'lb-maint', `${other.name}: → drain, then maint (recover: ${chosen.slot.name} is UP)`);
    await ctx.provider.set(other.name, 'drain', signal);
    const drained = await ctx.provider.waitDrained(other.name, this.spec.drain.timeoutMs, signal);
    if (!drained.ok && ctx.provider.shutdownSessions) await ctx.provider.shutdownSessions(other.name, signal);
    await ctx.provider.set(other.name, 'maint', signal);
    this.lbDone(phase, 'lb-maint', true, `${other.name} out of rotation (${drained.detail})`, t);
    if (chosen.release) await switchSymlink(this.release(), chosen.release, ctx.runId);
    ctx.store.writeExtra(ctx.recipe.name, 'slots', { live: chosen.slot.name, retiring: null } satisfies SlotsState);
    this.target = chosen.release;
    ctx.journal.write({ type: 'note', phase, detail: `recover: ${chosen.slot.name} (${chosen.release}) takes the traffic, ${other.name} is out` });
    return null;
  }

  /** the release converge settled on (recover), for the summary */
  settled(): string | null {
    return this.target;
  }

  async perform(phase: Phase, signal: AbortSignal): Promise<string | null | undefined> {
    const { ctx } = this;
    switch (phase) {
      case 'prepare': {
        // whatever still runs in the idle slot (an old slot kept for keep_previous) is stopped before it gets TARGET
        ctx.setSlot(this.idle);
        const views = await ctx.provider.observe(signal);
        const idleView = views.find((v) => v.slot === this.idle.name);
        if (idleView && idleView.admin === 'ready' && this.live) {
          // never stop a server the load balancer still sends to
          const t = performance.now();
          this.lb(phase, 'lb-drain', `${this.idle.name}: ${idleView.admin} → drain (it is not the live slot)`);
          await ctx.provider.set(this.idle.name, 'drain', signal);
          this.lbDone(phase, 'lb-drain', true, `${this.idle.name} out of rotation`, t);
        }
        const stopped = await ctx.stopService(phase, await linkRelease(this.idle.link), signal);
        if (stopped) return `stopping what was left in slot ${this.idle.name} failed: ${stopped}`;
        const t = performance.now();
        ctx.journal.write({ type: 'intent', phase, action: 'switch-slot-link', detail: `${this.idle.link} -> ${this.target}` });
        const detail = await pointLink(this.idle.link, this.release().releasesDir, this.target as string, ctx.runId);
        this.lbDone(phase, 'switch-slot-link', true, detail, t);
        return null;
      }
      case 'start':
        ctx.setSlot(this.idle);
        return ctx.startService(phase, this.target, signal);
      case 'after_start':
      case 'gates':
        ctx.setSlot(this.idle);
        return undefined; // the runner's own after_start/gates, on the idle slot's port
      case 'switch':
        return this.switchTo(phase, signal);
      case 'converge':
        return this.converge(phase, signal);
      case 'bake': {
        ctx.setSlot(this.idle);
        if (this.spec.bakeMs <= 0) return null;
        // the load balancer's own count of 5xx answers from the new slot must not grow while it bakes: looked at
        // every LB_5XX_EVERY_MS, and the first growth ends the bake (and switches back) at once
        const count = () => ctx.provider.responses5xx?.(this.idle.name, signal).catch(() => null) ?? Promise.resolve(null);
        const before = await count();
        const local = new AbortController();
        const onAbort = () => local.abort(signal.reason);
        signal.addEventListener('abort', onAbort, { once: true });
        let lb5xx: string | null = null;
        const watching =
          before === null
            ? Promise.resolve()
            : (async () => {
                while (!local.signal.aborted) {
                  await new Promise((r) => setTimeout(r, LB_5XX_EVERY_MS));
                  const now = await count();
                  if (now !== null && now > before && !local.signal.aborted) {
                    lb5xx = `bake ${seconds(this.spec.bakeMs)}: ${ctx.provider.label} counted ${now - before} 5xx answer${now - before === 1 ? '' : 's'} from ${this.idle.name}`;
                    local.abort(new Error(lb5xx));
                  }
                }
              })();
        const failure = await ctx.gates(phase, this.target, local.signal, this.spec.bakeMs);
        local.abort();
        await watching;
        signal.removeEventListener('abort', onAbort);
        if (lb5xx) return lb5xx;
        if (failure) return `bake ${seconds(this.spec.bakeMs)}: ${failure}`;
        const up = (await ctx.provider.observe(signal)).find((v) => v.slot === this.idle.name);
        return up && up.status.startsWith('UP') ? null : `bake: ${this.idle.name} is ${up?.status ?? 'missing'} in ${ctx.provider.label} after ${seconds(this.spec.bakeMs)}`;
      }
      case 'switch_back':
        return this.switchBack(phase, signal);
      case 'rollback_stop': {
        // the new slot, out of rotation (never in it, or drained by switch_back), is stopped
        ctx.setSlot(this.idle);
        const views = await ctx.provider.observe(signal);
        const v = views.find((x) => x.slot === this.idle.name);
        if (v && v.admin === 'ready' && this.live) {
          const t = performance.now();
          this.lb(phase, 'lb-maint', `${this.idle.name}: ready → maint before it is stopped`);
          await ctx.provider.set(this.idle.name, 'maint', signal);
          this.lbDone(phase, 'lb-maint', true, `${this.idle.name} in maint`, t);
        }
        return ctx.stopService(phase, this.target, signal);
      }
      case 'on_success':
        return this.retire(phase, signal);
      default:
        return undefined;
    }
  }

  /** idle in, wait UP; only then the live slot out, wait drained (bounded); current follows the live slot. */
  private async switchTo(phase: Phase, signal: AbortSignal): Promise<string | null> {
    const { ctx } = this;
    ctx.setSlot(this.idle);
    ctx.journal.write({ type: 'note', phase, detail: `load balancer before the switch:\n${await ctx.provider.snapshot(signal)}` });
    let t = performance.now();
    this.lb(phase, 'lb-ready', `${this.idle.name}: → ready`);
    await ctx.provider.set(this.idle.name, 'ready', signal);
    const up = await ctx.provider.waitUp(this.idle.name, ctx.upTimeoutMs, signal);
    this.lbDone(phase, 'lb-ready', up.ok, up.detail, t);
    if (!up.ok) return `${this.idle.name} did not come UP in ${ctx.provider.label}: ${up.detail}`;
    if (this.live) {
      t = performance.now();
      this.lb(phase, 'lb-drain', `${this.live.name}: ready → drain (${this.idle.name} is UP)`);
      await ctx.provider.set(this.live.name, 'drain', signal);
      const drained = await ctx.provider.waitDrained(this.live.name, this.spec.drain.timeoutMs, signal);
      if (!drained.ok) {
        const what = `${this.live.name} still had sessions after drain.timeout ${seconds(this.spec.drain.timeoutMs)} (${drained.detail})`;
        if (this.spec.drain.onTimeout === 'fail') {
          this.lbDone(phase, 'lb-drain', false, what, t);
          return what;
        }
        if (this.spec.drain.onTimeout === 'shutdown' && ctx.provider.shutdownSessions) await ctx.provider.shutdownSessions(this.live.name, signal);
        ctx.warnings.push(`${what} – ${this.spec.drain.onTimeout === 'shutdown' ? 'its sessions were shut down' : 'left as they are (on_timeout: proceed)'}`);
        ctx.emit({ kind: 'warning', phase, message: ctx.redact(ctx.warnings[ctx.warnings.length - 1] as string) });
      }
      this.lbDone(phase, 'lb-drain', true, drained.detail, t);
    }
    const current = await switchSymlink(this.release(), this.target as string, ctx.runId);
    ctx.journal.write({ type: 'note', phase, detail: `current follows the live slot: ${current}` });
    ctx.store.writeExtra(ctx.recipe.name, 'slots', { live: this.idle.name, retiring: null } satisfies SlotsState);
    return null;
  }

  /** The old slot is still running: back in, wait UP, then the new one out. */
  private async switchBack(phase: Phase, signal: AbortSignal): Promise<string | null> {
    const { ctx } = this;
    const old = this.live;
    if (!old) return 'no slot to switch back to (first run)';
    ctx.setSlot(old);
    const t = performance.now();
    this.lb(phase, 'lb-ready', `${old.name}: → ready (switching back)`);
    await ctx.provider.set(old.name, 'ready', signal);
    const up = await ctx.provider.waitUp(old.name, ctx.upTimeoutMs, signal);
    this.lbDone(phase, 'lb-ready', up.ok, up.detail, t);
    if (!up.ok) return `${old.name} did not come back UP in ${ctx.provider.label}: ${up.detail}`;
    const switchedMs = performance.now() - t;
    const t2 = performance.now();
    this.lb(phase, 'lb-drain', `${this.idle.name}: → drain (${old.name} is UP again)`);
    await ctx.provider.set(this.idle.name, 'drain', signal);
    const drained = await ctx.provider.waitDrained(this.idle.name, this.spec.drain.timeoutMs, signal);
    if (!drained.ok && ctx.provider.shutdownSessions && this.spec.drain.onTimeout === 'shutdown') await ctx.provider.shutdownSessions(this.idle.name, signal);
    this.lbDone(phase, 'lb-drain', true, drained.detail, t2);
    if (this.previous) await switchSymlink(this.release(), this.previous, ctx.runId);
    ctx.store.writeExtra(ctx.recipe.name, 'slots', { live: old.name, retiring: null } satisfies SlotsState);
    const message = `switched back to ${old.name} in ${seconds(switchedMs)}`;
    ctx.journal.write({ type: 'note', phase, detail: message });
    ctx.warnings.push(message);
    ctx.emit({ kind: 'warning', phase, message });
    return null;
  }

  /** The old slot: stopped now (keep_previous 0), or left drained for an instant switch back until the next run. */
  private async retire(phase: Phase, signal: AbortSignal): Promise<string | null> {
    const { ctx } = this;
    const old = this.live;
    if (!old) return null;
    if (this.spec.keepPreviousMs > 0) {
      const after = new Date(Date.now() + this.spec.keepPreviousMs).toISOString();
      ctx.store.writeExtra(ctx.recipe.name, 'slots', { live: this.idle.name, retiring: { slot: old.name, after } } satisfies SlotsState);
      ctx.journal.write({ type: 'note', phase, detail: `${old.name} stays up, drained, until ${after} (keep_previous) for an instant switch back; the next run stops it` });
      return null;
    }
    ctx.setSlot(old);
    const t = performance.now();
    this.lb(phase, 'lb-maint', `${old.name}: drain → maint before it is stopped`);
    await ctx.provider.set(old.name, 'maint', signal);
    this.lbDone(phase, 'lb-maint', true, `${old.name} in maint`, t);
    const failure = await ctx.stopService(phase, this.previous, signal);
    ctx.setSlot(this.idle);
    return failure ? `stopping the old slot ${old.name}: ${failure}` : null;
  }
}

export class RollingRun {
  private previous: string | null = null;
  private target: string | null = null;
  private readonly before = new Map<string, string | null>();
  /** instances this run has touched, in order: the way back walks them in reverse */
  private readonly touched: SlotSpec[] = [];
  /** drained with their batch but not updated yet: put back into rotation by the way back */
  private readonly drainedOnly = new Set<string>();

  constructor(private readonly ctx: StrategyContext, private readonly spec: Rolling) {}

  private release(): Extract<ReleaseSpec, { kind: 'symlink' }> {
    const r = this.ctx.recipe.release;
    if (!r || r.kind !== 'symlink') throw new Error('rolling needs release: { symlink, releases_dir } (rules.ts)');
    return r;
  }

  async resolve(signal: AbortSignal): Promise<Resolved> {
    const fail = (reason: string): Resolved => ({ ok: false, reason, previous: this.previous, target: this.target });
    const seen = await this.ctx.provider.inspect(signal);
    for (const w of seen.warnings) this.ctx.warnings.push(w);
    if (!seen.ok) return fail(`${this.ctx.provider.label}: ${seen.reason ?? 'cannot be used'}`);
    for (const i of this.spec.instances) this.before.set(i.name, await linkRelease(i.link));
    this.previous = this.before.get(this.spec.instances[0]?.name ?? '') ?? null;
    if (this.ctx.requested !== undefined && !RELEASE_ID.test(this.ctx.requested)) return fail(`--release "${this.ctx.requested}" must match [A-Za-z0-9][A-Za-z0-9._-]*`);
    this.target = this.ctx.requested ?? this.previous;
    if (this.target === null) return fail('no instance has a release yet and no --release given');
    const exists = await releaseExists(this.release(), this.target);
    if (!exists.ok) return fail(`release ${this.target} not found: ${exists.detail}`);
    const views = await this.ctx.provider.observe(signal);
    const up = views.filter((v) => v.admin === 'ready' && v.status.startsWith('UP')).length;
    if (up - this.spec.maxUnavailable < 1 && this.spec.instances.length > 1) {
      this.ctx.warnings.push(`only ${up} of ${this.spec.instances.length} instances are UP in rotation: taking ${this.spec.maxUnavailable} out leaves ${Math.max(0, up - this.spec.maxUnavailable)}`);
    }
    return { ok: true, previous: this.previous, target: this.target };
  }

  describe(): string {
    return `${this.spec.instances.map((i) => i.name).join(' → ')}, ${this.spec.maxUnavailable} at a time`;
  }

  /**
   * recover: the release to converge on is the good one blue/green's recover takes (the last that passed its gates,
   * else the dead run's PREVIOUS — what every untouched instance still runs), unless the dead run's journal proves
   * the whole fleet reached its TARGET (its rollout finished: every instance updated, gated and UP).
   */
  async resolveRecover(signal: AbortSignal, good: string | null, deadJournal: string | null): Promise<Resolved> {
    const fail = (reason: string): Resolved => ({ ok: false, reason, previous: null, target: null });
    const seen = await this.ctx.provider.inspect(signal);
    for (const w of seen.warnings) this.ctx.warnings.push(w);
    if (!seen.ok) return fail(`${this.ctx.provider.label}: ${seen.reason ?? 'cannot be used'}`);
    for (const i of this.spec.instances) this.before.set(i.name, await linkRelease(i.link));
    const records = deadJournal ? readJournal(deadJournal) : [];
    const rolledOut = records.some((r) => r.type === 'phase' && r.phase === 'rollout' && r.status === 'finished' && r.ok === true);
    const deadTarget = records.length > 0 ? digestJournal(records).targetRelease : null;
    const chosen = rolledOut && deadTarget !== null ? deadTarget : good;
    if (chosen === null) return fail('no release ever passed its gates and the unfinished run recorded no previous release – nothing known to be good to converge on');
    const exists = await releaseExists(this.release(), chosen);
    if (!exists.ok) return fail(`release ${chosen} to converge on not found: ${exists.detail}`);
    this.target = chosen;
    // what the fleet is being moved away from: the first instance on another release (none: already all on it)
    this.previous = [...this.before.values()].find((r) => r !== null && r !== chosen) ?? chosen;
    const on = this.spec.instances.map((i) => `${i.name} ${this.before.get(i.name) ?? 'no release'}`).join(', ');
    this.ctx.journal.write({ type: 'note', phase: 'resolve', detail: `recover converges every instance on ${chosen} (${rolledOut ? "the dead run's rollout had finished: the whole fleet reached it" : 'known good: the last release that passed its gates, else the dead run\'s PREVIOUS'}); instances now: ${on}` });
    return { ok: true, previous: this.previous, target: chosen };
  }

  /** the release converge settled on (recover), for the summary */
  settled(): string | null {
    return this.target;
  }

  /**
   * Every instance on the good release, gated, ready and UP; none left in drain or maint. An instance in rotation on
   * it is gated where it stands; every other one is redone — drained if it still takes traffic (only while another
   * one is UP), stopped, linked, started, gated, put back and waited UP — those already out first (they only add
   * capacity back), then the ones in rotation, one at a time.
   */
  private async converge(phase: Phase, signal: AbortSignal): Promise<string | null> {
    const { ctx } = this;
    const good = this.target as string;
    ctx.journal.write({ type: 'note', phase, detail: `load balancer before recover:\n${await ctx.provider.snapshot(signal)}` });
    const views = await ctx.provider.observe(signal);
    const inRotation = (name: string) => views.some((v) => v.slot === name && v.admin === 'ready' && v.status.startsWith('UP'));
    const redo: SlotSpec[] = [];
    for (const inst of this.spec.instances) {
      const release = this.before.get(inst.name) ?? null;
      // out of rotation the dead run may have been stopping it: whatever answers there now is not proof enough
      if (release !== good || !inRotation(inst.name)) {
        redo.push(inst);
        continue;
      }
      ctx.setSlot(inst);
      const failure = await ctx.gates(phase, good, signal);
      if (failure === null) continue;
      ctx.journal.write({ type: 'note', phase, detail: `${inst.name} (${good}) is in rotation but does not pass its gates: ${failure}` });
      redo.push(inst);
    }
    const order = [...redo.filter((i) => !inRotation(i.name)), ...redo.filter((i) => inRotation(i.name))];
    for (const inst of order) {
      ctx.setSlot(inst);
      const view = views.find((v) => v.slot === inst.name);
      if (view?.admin === 'ready') {
        // still in rotation: out first — drain() refuses unless another instance is UP; one that is DOWN takes no traffic
        // (HAProxy also shows a drained server that is down as DOWN, so its view says ready: draining it again is harmless)
        const out = inRotation(inst.name)
          ? await this.drain(phase, inst, signal)
          : await this.step(phase, `lb-drain ${inst.name}`, `${inst.name}: → drain (recover: ${view.status}, it takes no traffic)`, async () => {
              await ctx.provider.set(inst.name, 'drain', signal);
              return { ok: true, detail: `${inst.name} out of rotation` };
            });
        if (out) return `recover: ${out}`;
      }
      const f = await this.update(phase, inst, this.before.get(inst.name) ?? null, good, signal, true);
      if (f) return `recover: ${f}`;
    }
    const left = (await ctx.provider.observe(signal)).filter((v) => !(v.admin === 'ready' && v.status.startsWith('UP')));
    if (left.length > 0) return `recover: not every instance is UP in rotation in ${ctx.provider.label}: ${left.map((v) => `${v.slot} ${v.status}/${v.admin}`).join(', ')}`;
    const current = await this.step(phase, 'switch-symlink', `${this.release().symlink} -> ${good}`, async () => ({ ok: true, detail: await switchSymlink(this.release(), good, ctx.runId) }));
    if (current) return `recover: ${current}`;
    ctx.journal.write({ type: 'note', phase, detail: `recover: every instance runs ${good} and is UP in rotation${redo.length > 0 ? ` (redone: ${order.map((i) => i.name).join(', ')})` : ''}` });
    return null;
  }

  private async step(phase: Phase, action: string, detail: string, work: () => Promise<{ ok: boolean; detail: string }>): Promise<string | null> {
    const t = performance.now();
    this.ctx.journal.write({ type: 'intent', phase, action, detail });
    this.ctx.emit({ kind: 'step_started', phase, step: action });
    const r = await work();
    const durationMs = Math.round(performance.now() - t);
    this.ctx.journal.write({ type: 'done', phase, action, ok: r.ok, durationMs, detail: r.detail });
    this.ctx.emit({ kind: 'step_finished', phase, step: action, ok: r.ok, exitCode: null, durationMs, detail: this.ctx.redact(r.detail) });
    return r.ok ? null : `${action}: ${r.detail}`;
  }

  /** One instance through drain → stop → link → start → gates → back in → UP. */
  private async update(phase: Phase, inst: SlotSpec, from: string | null, to: string, signal: AbortSignal, drained = false): Promise<string | null> {
    const { ctx } = this;
    ctx.setSlot(inst);
    if (!drained) {
      const f = await this.drain(phase, inst, signal);
      if (f) return f;
    }
    const stopped = await ctx.stopService(phase, from, signal);
    if (stopped) return `${inst.name}: ${stopped}`;
    const linked = await this.step(phase, `link ${inst.name}`, `${inst.link} -> ${to}`, async () => ({ ok: true, detail: await pointLink(inst.link, this.release().releasesDir, to, ctx.runId) }));
    if (linked) return linked;
    const started = await ctx.startService(phase, to, signal);
    if (started) return `${inst.name}: ${started}`;
    const gated = await ctx.gates(phase, to, signal);
    if (gated) return `${inst.name}: ${gated}`;
    return this.step(phase, `lb-ready ${inst.name}`, `${inst.name}: → ready`, async () => {
      await ctx.provider.set(inst.name, 'ready', signal);
      return ctx.provider.waitUp(inst.name, ctx.upTimeoutMs, signal);
    });
  }

  private async drain(phase: Phase, inst: SlotSpec, signal: AbortSignal): Promise<string | null> {
    const { ctx } = this;
    return this.step(phase, `lb-drain ${inst.name}`, `${inst.name}: → drain`, async () => {
      const others = (await ctx.provider.observe(signal)).filter((v) => v.slot !== inst.name && v.admin === 'ready' && v.status.startsWith('UP'));
      if (others.length === 0 && this.spec.instances.length > 1) return { ok: false, detail: `no other instance is UP in ${ctx.provider.label}: taking ${inst.name} out would leave no server` };
      await ctx.provider.set(inst.name, 'drain', signal);
      const d = await ctx.provider.waitDrained(inst.name, this.spec.drain.timeoutMs, signal);
      if (d.ok) return d;
      if (this.spec.drain.onTimeout === 'fail') return d;
      if (this.spec.drain.onTimeout === 'shutdown' && ctx.provider.shutdownSessions) await ctx.provider.shutdownSessions(inst.name, signal);
      ctx.warnings.push(`${inst.name}: ${d.detail} – ${this.spec.drain.onTimeout === 'shutdown' ? 'its sessions were shut down' : 'left as they are'}`);
      return { ok: true, detail: d.detail };
    });
  }

  async perform(phase: Phase, signal: AbortSignal): Promise<string | null | undefined> {
    const { ctx } = this;
    switch (phase) {
      case 'rollout': {
        const batches: SlotSpec[][] = [];
        for (let i = 0; i < this.spec.instances.length; i += this.spec.maxUnavailable) batches.push(this.spec.instances.slice(i, i + this.spec.maxUnavailable));
        for (const batch of batches) {
          // at most max_unavailable out of rotation at once: the whole batch drains, then each is updated
          for (const inst of batch) {
            ctx.setSlot(inst);
            const f = await this.drain(phase, inst, signal);
            if (f) return f;
            this.drainedOnly.add(inst.name);
          }
          for (const inst of batch) {
            this.drainedOnly.delete(inst.name);
            this.touched.push(inst);
            const f = await this.update(phase, inst, this.before.get(inst.name) ?? null, this.target as string, signal, true);
            if (f) return f;
          }
        }
        await switchSymlink(this.release(), this.target as string, ctx.runId);
        return null;
      }
      case 'bake':
        if (this.spec.bakeMs <= 0) return null;
        ctx.setSlot(this.spec.instances[this.spec.instances.length - 1] ?? null);
        return ctx.gates(phase, this.target, signal, this.spec.bakeMs);
      case 'rollback_rollout': {
        // the updated instances go back to their own previous release, newest first, each gated
        for (const inst of [...this.touched].reverse()) {
          const back = this.before.get(inst.name) ?? null;
          if (back === null) return `${inst.name} had no release before this run: nothing to go back to`;
          const f = await this.update(phase, inst, this.target, back, signal);
          if (f) return f;
        }
        for (const name of this.drainedOnly) {
          const inst = this.spec.instances.find((i) => i.name === name) as SlotSpec;
          ctx.setSlot(inst);
          const f = await this.step(phase, `lb-ready ${name}`, `${name}: → ready (never updated)`, async () => {
            await ctx.provider.set(name, 'ready', signal);
            return ctx.provider.waitUp(name, ctx.upTimeoutMs, signal);
          });
          if (f) return f;
        }
        if (this.previous) await switchSymlink(this.release(), this.previous, ctx.runId);
        return null;
      }
      case 'converge':
        return this.converge(phase, signal);
      case 'after_start':
      case 'gates':
        return null;
      default:
        return undefined;
    }
  }
}

export async function providerFor(strategy: Exclude<StrategySpec, { kind: 'in_place' }>, slots: SlotSpec[]): Promise<TrafficProvider> {
  const t = strategy.traffic;
  const servers = Object.fromEntries(slots.map((s) => [s.name, t.kind === 'command' ? s.server : t.servers[s.name] ?? s.server]));
  switch (t.kind) {
    case 'haproxy': {
      const { HaproxyProvider } = await import('../traffic/haproxy.js');
      return new HaproxyProvider({ socket: t.socket, backend: t.backend, servers, ...(t.stateFile ? { stateFile: t.stateFile } : {}) });
    }
    case 'nginx': {
      const { NginxProvider } = await import('../traffic/nginx.js');
      return new NginxProvider({ upstreamFile: t.upstreamFile, upstream: t.upstream, servers, test: t.test, reload: t.reload, pidfile: t.pidfile, ...(t.checkUrl ? { checkUrl: t.checkUrl } : {}) });
    }
    case 'command': {
      const { CommandProvider } = await import('../traffic/command.js');
      return new CommandProvider({ enable: t.enable, disable: t.disable, ...(t.status ? { status: t.status } : {}), servers });
    }
  }
}

