// Step 4 of loading: named cross-field rules over the schema-valid recipe. Every rule runs; every
// violation is reported with both values, e.g. "gates[0].stable_for: 30s must be shorter than gates[0].timeout (20s)".
import { constants } from 'node:os';
import { DEFAULTS } from './types.js';
import { CHECK_TYPES } from './constants.js';
import type { WrittenCheck, WrittenRecipe, WrittenRunStep } from './schema.js';
import { formatMs, formatWritten, MAX_DURATION_MS, parseDuration } from './duration.js';
import { formatPath, type Path, type PathSegment } from './parse.js';
import { parseHostPort, parseUrl } from './targets.js';
import { sampleTemplate } from './runtime-vars.js';
import { checkLabel } from './normalize.js';

export interface RuleProblem {
  path: Path;
  at: 'key' | 'value';
  message: string;
}

export interface RuleResult {
  problems: RuleProblem[];
  warnings: RuleProblem[];
}

type Written = string | number | undefined;

/** A timing value of a check with where it came from, for messages that print both values. */
interface Resolved {
  ms: number;
  /** "gates[0].timeout", "defaults.timeout" or "gates[0].timeout (the default)" */
  label: string;
  text: string;
  path: Path;
  source: 'check' | 'defaults' | 'builtin';
}

class Rules {
  readonly problems: RuleProblem[] = [];
  readonly warnings: RuleProblem[] = [];

  error(path: Path, message: string, at: 'key' | 'value' = 'value'): void {
    this.problems.push({ path, at, message });
  }

  warn(path: Path, message: string, at: 'key' | 'value' = 'value'): void {
    this.warnings.push({ path, at, message });
  }

  /** Milliseconds of a duration the schema accepted, refusing ones timers cannot hold. */
  duration(path: Path, value: Written): number | undefined {
    if (value === undefined) return undefined;
    const ms = parseDuration(value);
    if (ms === undefined) return undefined;
    if (ms > MAX_DURATION_MS) {
      this.error(path, `must be at most ${formatMs(MAX_DURATION_MS)} (got ${formatWritten(value)})`);
      return undefined;
    }
    return ms;
  }
}

export function checkRules(recipe: WrittenRecipe): RuleResult {
  const r = new Rules();
  const defaults = recipe.defaults ?? {};
  for (const key of ['interval', 'attempt_timeout', 'timeout'] as const) r.duration(['defaults', key], defaults[key]);
  if (defaults.interval !== undefined && parseDuration(defaults.interval) === 0) {
    r.error(['defaults', 'interval'], `must be greater than 0 (got ${formatWritten(defaults.interval)})`);
  }

  checkList(r, recipe, ['dependencies'], recipe.dependencies ?? []);
  checkList(r, recipe, ['gates'], recipe.gates ?? []);
  checkBaselines(r, recipe);
  checkHookList(r, recipe, ['verify'], recipe.verify ?? []);
  for (const hook of ['before_stop', 'after_start', 'on_success', 'on_rollback'] as const) {
    checkHookList(r, recipe, ['hooks', hook], recipe.hooks?.[hook] ?? []);
  }
  (recipe.rollback?.steps ?? []).forEach((step, i) => checkStep(r, ['rollback', 'steps', i], step));

  checkRelease(r, recipe);
  checkStrategy(r, recipe);
  r.duration(['outage_wait'], recipe.outage_wait);
  if (recipe.deadline !== undefined && r.duration(['deadline'], recipe.deadline) === 0) r.error(['deadline'], `must be greater than 0 (got ${formatWritten(recipe.deadline)})`);
  if (checkService(r, recipe)) {
    checkStop(r, recipe);
    checkStart(r, recipe);
  }

  r.duration(['lock', 'timeout'], recipe.lock?.timeout);
  (recipe.notify ?? []).forEach((n, i) => {
    const url = parseUrl(n.url, 'http');
    if (!url.ok) r.error(['notify', i, 'url'], `${url.error} (got ${JSON.stringify(n.url)})`);
    r.duration(['notify', i, 'timeout'], n.timeout);
  });
  return { problems: r.problems, warnings: r.warnings };
}

/** baseline: compares two releases, so only a gate may have one, and it must compare something. */
function checkBaselines(r: Rules, recipe: WrittenRecipe): void {
  const elsewhere: Array<[PathSegment[], Array<WrittenCheck | WrittenRunStep>]> = [
    [['dependencies'], recipe.dependencies ?? []],
    [['verify'], recipe.verify ?? []],
    ...(['before_stop', 'after_start', 'on_success', 'on_rollback'] as const).map((h): [PathSegment[], Array<WrittenCheck | WrittenRunStep>] => [['hooks', h], recipe.hooks?.[h] ?? []]),
  ];
  for (const [listPath, items] of elsewhere) {
    items.forEach((item, i) => {
      if ('baseline' in item && item.baseline !== undefined) r.error([...listPath, i, 'baseline'], 'only a gate can have a baseline: it compares the started release with the one that ran before', 'key');
    });
  }
  (recipe.gates ?? []).forEach((gate, i) => {
    const b = gate.baseline;
    if (!b) return;
    const path: PathSegment[] = ['gates', i, 'baseline'];
    if (gate.recipe !== undefined) r.error(path, 'a recipe: check has no latency or error rate to compare', 'key');
    if (b.latency_p90 === undefined && b.error_rate === undefined) r.error(path, 'a baseline needs latency_p90 (like "1.5x") or error_rate (like "+1%"), or both (got neither)');
    if (b.latency_p90 !== undefined && Number(b.latency_p90.slice(0, -1)) < 1) r.error([...path, 'latency_p90'], `must be at least 1x: below that the new release would have to be faster than the old one (got ${JSON.stringify(b.latency_p90)})`);
    if (b.error_rate !== undefined && Number(b.error_rate.replace(/^\+/, '').slice(0, -1)) > 100) r.error([...path, 'error_rate'], `must be at most +100% (got ${JSON.stringify(b.error_rate)})`);
    r.duration([...path, 'latency_slack'], b.latency_slack);
  });
}

function checkList(r: Rules, recipe: WrittenRecipe, listPath: PathSegment[], checks: WrittenCheck[]): void {
  const seen = new Map<string, number>();
  checks.forEach((check, i) => {
    const path = [...listPath, i];
    if (!checkOne(r, recipe, path, check)) return;
    uniqueName(r, seen, listPath, i, check.name ?? checkLabel(check));
  });
}

function checkHookList(r: Rules, recipe: WrittenRecipe, listPath: PathSegment[], items: Array<WrittenRunStep | WrittenCheck>): void {
  const seen = new Map<string, number>();
  items.forEach((item, i) => {
    const path = [...listPath, i];
    if ('run' in item && item.run !== undefined) {
      checkStep(r, path, item as WrittenRunStep);
      return;
    }
    const check = item as WrittenCheck;
    if (!CHECK_TYPES.some((t) => check[t] !== undefined)) {
      r.error(path, `a hook item needs run (a step) or one check type (${CHECK_TYPES.join(', ')}) (got neither)`);
      return;
    }
    if (!checkOne(r, recipe, path, check)) return;
    uniqueName(r, seen, listPath, i, check.name ?? checkLabel(check));
  });
}

function uniqueName(r: Rules, seen: Map<string, number>, listPath: PathSegment[], i: number, name: string): void {
  const first = seen.get(name);
  if (first === undefined) {
    seen.set(name, i);
    return;
  }
  r.error(
    [...listPath, i],
    `check name "${name}" is already used by ${formatPath([...listPath, first])}; names are unique per list (add a distinct name:)`,
  );
}

/** Returns false when the check is too broken to have a name. */
function checkOne(r: Rules, recipe: WrittenRecipe, path: PathSegment[], check: WrittenCheck): boolean {
  const types = CHECK_TYPES.filter((t) => check[t] !== undefined);
  if (types.length === 0) {
    r.error(path, `a check needs exactly one of ${CHECK_TYPES.join(', ')} (got none)`);
    return false;
  }
  if (types.length > 1) {
    r.error([...path, types[1] as string], `a check has exactly one type, but this one has ${types.join(' and ')}; split it into ${types.length} checks`, 'key');
    return false;
  }

  let targetOk = true;
  if (check.tcp !== undefined && typeof check.tcp === 'string') {
    // run-time references (${SAFE_RESTART_PORT}) are bound per slot: the shape is checked with sample values
    const parsed = parseHostPort(sampleTemplate(check.tcp));
    if (!parsed.ok) {
      r.error([...path, 'tcp'], `${parsed.error} (got ${JSON.stringify(check.tcp)})`);
      targetOk = false;
    }
  }
  if (check.http !== undefined) {
    const url = typeof check.http === 'string' ? check.http : check.http.url;
    const urlPath = typeof check.http === 'string' ? [...path, 'http'] : [...path, 'http', 'url'];
    const parsed = parseUrl(sampleTemplate(url), 'http');
    if (!parsed.ok) {
      r.error(urlPath, `${parsed.error} (got ${JSON.stringify(url)})`);
      targetOk = false;
    }
    if (typeof check.http === 'object' && check.http.insecure === true) {
      r.warn([...path, 'http', 'insecure'], 'TLS certificate verification is disabled (insecure: true)');
    }
    if (typeof check.http === 'object' && check.http.body && typeof check.http.body === 'object') {
      try {
        new RegExp(check.http.body.regex);
      } catch (error) {
        r.error([...path, 'http', 'body', 'regex'], `invalid regular expression: ${(error as Error).message} (got ${JSON.stringify(check.http.body.regex)})`);
      }
    }
  }
  for (const kind of ['postgres', 'mysql', 'redis'] as const) {
    const value = check[kind];
    if (value === undefined) continue;
    const parsed = parseUrl(value, kind);
    if (!parsed.ok) {
      r.error([...path, kind], `${parsed.error} (got ${JSON.stringify(value)})`);
      targetOk = false;
    }
  }
  checkTiming(r, recipe, path, check);
  return targetOk;
}

function checkTiming(r: Rules, recipe: WrittenRecipe, path: PathSegment[], check: WrittenCheck): void {
  const defaults = recipe.defaults ?? {};
  const here = formatPath(path);
  const resolve = (key: 'interval' | 'attempt_timeout' | 'timeout' | 'initial_delay' | 'stable_for', builtin: number): Resolved | undefined => {
    const own = check[key];
    if (own !== undefined) {
      const ms = r.duration([...path, key], own);
      return ms === undefined ? undefined : { ms, label: `${here}.${key}`, text: formatWritten(own), path: [...path, key], source: 'check' };
    }
    const fromDefaults = key === 'interval' || key === 'attempt_timeout' || key === 'timeout' ? defaults[key] : undefined;
    if (fromDefaults !== undefined) {
      const ms = parseDuration(fromDefaults);
      if (ms === undefined || ms > MAX_DURATION_MS) return undefined;
      return { ms, label: `defaults.${key}`, text: formatWritten(fromDefaults), path: ['defaults', key], source: 'defaults' };
    }
    return { ms: builtin, label: `${here}.${key}`, text: `${formatMs(builtin)}, the default`, path: [...path, key], source: 'builtin' };
  };
  const interval = resolve('interval', DEFAULTS.intervalMs);
  const attempt = resolve('attempt_timeout', DEFAULTS.attemptTimeoutMs);
  const timeout = resolve('timeout', DEFAULTS.timeoutMs);
  const initialDelay = resolve('initial_delay', DEFAULTS.initialDelayMs);
  const stableFor = resolve('stable_for', DEFAULTS.stableForMs);
  const where = (v: Resolved): Path => (v.source === 'defaults' ? path : v.path);
  const both = (a: Resolved, relation: string, b: Resolved): string =>
    `${a.source === 'check' ? '' : `${a.label} `}${a.source === 'check' ? a.text : `(${a.text})`} ${relation} ${b.label} (${b.text})`;

  if (interval && interval.source === 'check' && interval.ms === 0) r.error(interval.path, `must be greater than 0 (got ${interval.text})`);
  if (attempt && attempt.source === 'check' && attempt.ms === 0) r.error(attempt.path, `must be greater than 0 (got ${attempt.text})`);
  if (!timeout) return;
  if (timeout.ms === 0) {
    r.error(where(timeout), `${timeout.label} must be greater than 0 (got ${timeout.text})`);
    return;
  }
  // The built-in attempt timeout shrinks to fit a short check timeout; one the user wrote is a rule.
  if (attempt && attempt.source !== 'builtin' && attempt.ms > timeout.ms) {
    r.error(where(attempt.source === 'check' ? attempt : timeout), both(attempt, 'must be at most', timeout));
  }
  if (initialDelay && initialDelay.source === 'check' && initialDelay.ms >= timeout.ms) {
    r.error(initialDelay.path, both(initialDelay, 'must be shorter than', timeout));
  }
  if (stableFor && stableFor.source === 'check' && stableFor.ms >= timeout.ms) {
    r.error(stableFor.path, both(stableFor, 'must be shorter than', timeout));
  }
}

function checkStep(r: Rules, path: PathSegment[], step: { timeout?: Written }): void {
  const ms = r.duration([...path, 'timeout'], step.timeout);
  if (ms === 0) r.error([...path, 'timeout'], `must be greater than 0 (got ${formatWritten(step.timeout as string | number)})`);
}

function checkRelease(r: Rules, recipe: WrittenRecipe): void {
  const release = recipe.release;
  if (!release) return;
  const links = release.symlink !== undefined || release.releases_dir !== undefined;
  const commands = release.current !== undefined || release.activate !== undefined;
  if (links && release.exists !== undefined) {
    r.error(['release', 'exists'], `release.exists is for current + activate; with symlink + releases_dir a release exists when releases_dir/ID is a directory`, 'key');
  }
  if (links && commands) {
    const key = release.current !== undefined ? 'current' : 'activate';
    r.error(['release', key], 'use either symlink + releases_dir or current + activate, not both', 'key');
    return;
  }
  if (!links && !commands) {
    r.error(['release'], 'release needs symlink + releases_dir, or current + activate (got neither)');
    return;
  }
  if (release.symlink !== undefined && release.releases_dir === undefined) {
    r.error(['release', 'symlink'], `release.symlink (${release.symlink}) needs release.releases_dir, where --release ID is looked up (got none)`, 'key');
  }
  if (release.releases_dir !== undefined && release.symlink === undefined) {
    r.error(['release', 'releases_dir'], `release.releases_dir (${release.releases_dir}) needs release.symlink, the link to switch (got none)`, 'key');
  }
  if (release.current !== undefined && release.activate === undefined) {
    r.error(['release', 'current'], 'release.current needs release.activate, the command that switches releases (got none)', 'key');
  }
  if (release.activate !== undefined && release.current === undefined) {
    r.error(['release', 'activate'], 'release.activate needs release.current, the command that prints the active release (got none)', 'key');
  }
  if (release.activate) checkStep(r, ['release', 'activate'], release.activate);
  if (release.exists) checkStep(r, ['release', 'exists'], release.exists);
}

// blue/green and rolling need the slots' own links (so a release symlink) and one load balancer.
function checkStrategy(r: Rules, recipe: WrittenRecipe): void {
  const s = recipe.strategy;
  if (s === undefined || s === 'in_place') return;
  const key = 'blue_green' in s ? 'blue_green' : 'rolling';
  const spec = 'blue_green' in s ? s.blue_green : s.rolling;
  const at = ['strategy', key];
  if (!recipe.release || recipe.release.symlink === undefined || recipe.release.releases_dir === undefined) {
    r.error(at, `strategy ${key} needs release: { symlink, releases_dir }: each slot runs from a link of its own into releases_dir (got ${recipe.release ? 'release commands' : 'no release section'})`, 'key');
  }
  const providers = (['haproxy', 'nginx', 'command'] as const).filter((p) => spec.traffic[p] !== undefined);
  if (providers.length !== 1) r.error([...at, 'traffic'], `traffic needs exactly one of haproxy, nginx, command (got ${providers.length === 0 ? 'none' : providers.join(' and ')})`);
  r.duration([...at, 'bake'], spec.bake);
  r.duration([...at, 'drain', 'timeout'], spec.drain?.timeout);
  const ports = new Map<number, string>();
  const names: Array<{ name: string; port: number }> = 'blue_green' in s ? Object.entries(s.blue_green.slots).map(([name, v]) => ({ name, port: v.port })) : s.rolling.instances;
  for (const { name, port } of names) {
    const other = ports.get(port);
    if (other !== undefined) r.error([...at, 'blue_green' in s ? 'slots' : 'instances'], `${name} and ${other} both use port ${port}: each needs its own`);
    ports.set(port, name);
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(name)) r.error([...at, 'slots', name], `a slot name is 1 to 63 of A-Z a-z 0-9 . _ - (got ${JSON.stringify(name)})`, 'key');
  }
  if ('blue_green' in s) {
    const bg = s.blue_green;
    if (names.length !== 2) r.error([...at, 'slots'], `blue_green needs exactly two slots (got ${names.length}: ${names.map((n) => n.name).join(', ') || 'none'})`);
    r.duration([...at, 'keep_previous'], bg.keep_previous);
    const bake = bg.bake === undefined ? 0 : (parseDuration(bg.bake) ?? 0);
    const keep = bg.keep_previous === undefined ? null : (parseDuration(bg.keep_previous) ?? null);
    if (keep !== null && keep > 0 && keep < bake) r.error([...at, 'keep_previous'], `keep_previous (${formatWritten(bg.keep_previous as string | number)}) must be at least bake (${formatWritten(bg.bake as string | number)}): the old slot must still be there to switch back to`);
    if (bg.traffic.haproxy) for (const { name } of names) if (!bg.traffic.haproxy.servers?.[name]) r.error([...at, 'traffic', 'haproxy', 'servers'], `names no HAProxy server for slot ${name} (servers: { ${names.map((n) => `${n.name}: …`).join(', ')} })`, 'key');
  } else {
    const names2 = new Set<string>();
    s.rolling.instances.forEach((inst, i) => {
      if (names2.has(inst.name)) r.error([...at, 'instances', i, 'name'], `instance name ${inst.name} is used twice`);
      names2.add(inst.name);
    });
  }
}

// A recipe has either service (a manager stops and starts it) or both stop and start.
function checkService(r: Rules, recipe: WrittenRecipe): boolean {
  const s = recipe.service;
  if (s) {
    const what = s.systemd !== undefined ? `systemd ${s.systemd}` : s.supervisor !== undefined ? `supervisor ${s.supervisor.program}` : 'service';
    for (const key of ['stop', 'start'] as const) {
      if (recipe[key] !== undefined) r.error([key], `a recipe has either service or stop + start, not both: service (${what}) already ${key}s the service – remove ${key}:`, 'key');
    }
    if (s.systemd !== undefined && s.supervisor !== undefined) r.error(['service', 'supervisor'], `service has exactly one of systemd or supervisor (got both: systemd ${s.systemd} and supervisor ${s.supervisor.program})`, 'key');
    else if (s.systemd === undefined && s.supervisor === undefined) r.error(['service'], 'service needs systemd: UNIT or supervisor: { program } (got neither)');
    if (s.reload !== undefined && s.systemd === undefined) r.error(['service', 'reload'], 'service.reload is for systemd units (systemctl reload); supervisord programs restart', 'key');
    if (s.systemd !== undefined && !/^[A-Za-z0-9:_.\\@${}-]+$/.test(s.systemd)) r.error(['service', 'systemd'], `not a unit name (got ${JSON.stringify(s.systemd)})`);
    if (s.supervisor && s.supervisor.config !== undefined && s.supervisor.serverurl !== undefined) r.warn(['service', 'supervisor', 'serverurl'], 'both config and serverurl given: supervisorctl uses serverurl and reads the rest of config', 'key');
    r.duration(['service', 'stop_timeout'], s.stop_timeout);
    r.duration(['service', 'start_timeout'], s.start_timeout);
    return false;
  }
  if (recipe.stop === undefined && recipe.start === undefined) {
    r.error([], 'the recipe needs service (systemd: UNIT, or supervisor: { program }) or both stop and start (got neither)');
    return false;
  }
  if (recipe.stop === undefined) r.error(['start'], 'start needs stop too (or use service: for a systemd unit or supervisord program)', 'key');
  if (recipe.start === undefined) r.error(['stop'], 'stop needs start too (or use service: for a systemd unit or supervisord program)', 'key');
  return recipe.stop !== undefined && recipe.start !== undefined;
}

function checkStop(r: Rules, recipe: WrittenRecipe): void {
  const stop = recipe.stop;
  if (!stop) return;
  if (stop.run !== undefined && stop.signal !== undefined) {
    r.error(['stop', 'signal'], `stop has exactly one of run or signal (got both: run and signal ${stop.signal})`, 'key');
  } else if (stop.run === undefined && stop.signal === undefined) {
    r.error(['stop'], 'stop needs one of run or signal (got neither)');
  }
  if (stop.signal !== undefined) {
    if (!(stop.signal in constants.signals)) r.error(['stop', 'signal'], `unknown signal (got ${JSON.stringify(stop.signal)})`);
    if (stop.pidfile === undefined) r.error(['stop', 'signal'], `stop.signal (${stop.signal}) needs stop.pidfile, the file holding the pid to signal (got none)`, 'key');
  } else {
    if (stop.grace !== undefined) r.warn(['stop', 'grace'], 'stop.grace only applies with stop.signal; ignored', 'key');
    if (stop.pidfile !== undefined) r.warn(['stop', 'pidfile'], 'stop.pidfile only applies with stop.signal; ignored', 'key');
  }
  r.duration(['stop', 'grace'], stop.grace);
  checkStep(r, ['stop'], stop);
}

function checkStart(r: Rules, recipe: WrittenRecipe): void {
  const start = recipe.start;
  if (!start) return;
  if (start.run !== undefined && start.spawn !== undefined) {
    r.error(['start', 'spawn'], 'start has exactly one of run or spawn (got both)', 'key');
  } else if (start.run === undefined && start.spawn === undefined) {
    r.error(['start'], 'start needs one of run or spawn (got neither)');
  }
  if (start.spawn !== undefined && start.pidfile === undefined) {
    r.error(['start', 'spawn'], 'start.spawn needs start.pidfile, where safe-restart writes the pid (got none)', 'key');
  }
  if (start.spawn === undefined && start.log !== undefined) r.warn(['start', 'log'], 'start.log only applies with start.spawn; ignored', 'key');
  checkStep(r, ['start'], start);
}
