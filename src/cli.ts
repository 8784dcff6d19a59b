// argv → one command → exit code. The only module that touches process.*: commands get an Io.
// Commands are imported lazily so `--version` and `validate` never load database drivers.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { packageRoot } from './package-root.js';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { EXIT, RecipeError, SafeRestartError, UsageError } from './errors.js';

export interface Io {
  stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  stderr: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** Subscribe to SIGINT/SIGTERM for the duration of a command; returns an unsubscribe function. */
  onSignal(handler: (signal: NodeJS.Signals) => void): () => void;
  /** Subscribe to SIGHUP (the terminal went away); while subscribed it does not end the process. */
  onHangup?(handler: () => void): () => void;
}

export type Options = NonNullable<ParseArgsConfig['options']>;
export type Values = Record<string, string | boolean | string[] | boolean[] | undefined>;

export interface Command {
  name: string;
  summary: string;
  usage: string;
  options: Options;
  /** Lines appended to --help after the options. */
  help?: string;
  minPositionals?: number;
  maxPositionals?: number;
  run(values: Values, positionals: string[], io: Io): Promise<number>;
}

const COMMANDS: Record<string, () => Promise<{ command: Command }>> = {
  run: () => import('./cli/run.js'),
  check: () => import('./cli/check.js'),
  plan: () => import('./cli/plan.js'),
  preflight: () => import('./cli/preflight.js'),
  validate: () => import('./cli/validate.js'),
  schema: () => import('./cli/schema.js'),
  recover: () => import('./cli/recover.js'),
  history: () => import('./cli/history.js'),
  status: () => import('./cli/status.js'),
  demo: () => import('./cli/demo.js'),
};

const SUMMARIES: Record<keyof typeof COMMANDS, string> = {
  run: 'check dependencies, stop, switch release, start, prove health; roll back on failure',
  check: 'evaluate dependencies (and --gates) against the live system; changes nothing',
  plan: 'print the resolved plan in the order it would run; touches nothing',
  preflight: 'would a run go ahead now? lock, releases, rollback readiness, dependencies, verify; touches nothing',
  validate: 'validate recipe files',
  schema: 'print the JSON Schema of the recipe format',
  recover: 'finish an interrupted run: re-activate the last good release and prove it healthy',
  history: 'list past runs from the journals',
  status: 'per recipe: last good release, last run, run in progress',
  demo: 'a real restart with rollback against a bundled service, in a temp dir',
};

export function version(): string {
  const pkg = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

function topHelp(): string {
  const width = Math.max(...Object.keys(SUMMARIES).map((k) => k.length));
  const lines = Object.entries(SUMMARIES).map(([k, v]) => `  ${k.padEnd(width)}  ${v}`);
  return [
    'safe-restart — restart a service predictably, and roll back when it is not healthy',
    '',
    'Usage: safe-restart <command> [options]',
    '',
    'Commands:',
    ...lines,
    '',
    'Run `safe-restart <command> --help` for a command\'s options. `--version` prints the version.',
    'Exit codes: 0 ok · 1 failed, nothing touched · 2 rolled back, previous healthy · 3 needs a human ·',
    '            4 locked · 64 usage · 65 invalid recipe · 70 internal error',
  ].join('\n');
}

export function commandHelp(command: Command): string {
  const lines = [`Usage: safe-restart ${command.usage}`, '', command.summary, ''];
  const entries = Object.entries(command.options);
  if (entries.length > 0) {
    lines.push('Options:');
    for (const [name, opt] of entries) {
      const flag = `${opt.short ? `-${opt.short}, ` : '    '}--${name}${opt.type === 'string' ? ' VALUE' : ''}`;
      lines.push(`  ${flag.padEnd(28)}${(opt as { description?: string }).description ?? ''}`);
    }
    lines.push(`  ${'    --help'.padEnd(28)}show this help`);
  }
  if (command.help) lines.push('', command.help);
  return lines.join('\n');
}

export function describeError(error: unknown): { text: string; code: number } {
  if (error instanceof RecipeError) {
    const n = error.problems.length;
    return { text: `${error.message}\n${n} problem${n === 1 ? '' : 's'} found; nothing was touched.`, code: error.exitCode };
  }
  if (error instanceof UsageError) return { text: `safe-restart: ${error.message}\nRun with --help for usage.`, code: error.exitCode };
  if (error instanceof SafeRestartError) return { text: `safe-restart: ${error.message}`, code: error.exitCode };
  const stack = error instanceof Error ? (error.stack ?? error.message) : String(error);
  return { text: `safe-restart: internal error (please report this): ${stack}`, code: EXIT.internal };
}

function defaultIo(): Io {
  // a closed terminal (EIO) or a closed pipe (EPIPE, `| head -1`) must not crash a run: the journal carries on
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {});
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    // opening stdin costs a cold start 1–2 ms that most commands never read
    get stdin() {
      return process.stdin;
    },
    env: process.env,
    cwd: process.cwd(),
    onSignal(handler) {
      const h = (s: NodeJS.Signals) => handler(s);
      process.on('SIGINT', h);
      process.on('SIGTERM', h);
      return () => {
        process.off('SIGINT', h);
        process.off('SIGTERM', h);
      };
    },
    onHangup(handler) {
      const h = () => handler();
      process.on('SIGHUP', h);
      return () => process.off('SIGHUP', h);
    },
  };
}

/**
 * With an Io (tests, embedding): runs the command and returns its exit code. Without one it is the process:
 * once the exit code is known and stdout and stderr are flushed, it exits, rather than waiting for the event
 * loop to empty (an abandoned attempt's socket or timer must not keep a finished command alive). Name lookups go
 * through c-ares (src/checks/resolve.ts), not getaddrinfo: a getaddrinfo stuck in libuv's threadpool would delay
 * even process.exit() until the resolver gave up, since libuv joins its threads at exit.
 */
export async function main(argv: string[], io?: Io): Promise<number> {
  if (io) return execute(argv, io);
  return exitFlushed(await execute(argv, defaultIo()));
}

async function exitFlushed(code: number): Promise<never> {
  process.exitCode = code;
  await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
  process.exit(code);
}

/** Resolves once everything written so far has left the process (a pipe's writes are asynchronous). */
function flushed(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => {
    if (stream.destroyed || stream.writableEnded) return resolve();
    stream.write('', () => resolve());
  });
}

async function execute(argv: string[], io: Io): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
    io.stdout.write(`${topHelp()}\n`);
    return first === undefined ? EXIT.usage : EXIT.ok;
  }
  if (first === '--version' || first === '-V' || first === 'version') {
    io.stdout.write(`${version()}\n`);
    return EXIT.ok;
  }
  const load = COMMANDS[first];
  if (!load) {
    const { text, code } = describeError(new UsageError(`unknown command "${first}"${suggestCommand(first)}`));
    io.stderr.write(`${text}\n`);
    return code;
  }
  try {
    const { command } = await load();
    if (rest.includes('--help') || rest.includes('-h')) {
      io.stdout.write(`${commandHelp(command)}\n`);
      return EXIT.ok;
    }
    let parsed;
    try {
      parsed = parseArgs({ args: rest, options: command.options, allowPositionals: true, strict: true });
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
    const { values, positionals } = parsed;
    if (positionals.length < (command.minPositionals ?? 0)) throw new UsageError(`missing argument: safe-restart ${command.usage}`);
    if (command.maxPositionals !== undefined && positionals.length > command.maxPositionals) {
      throw new UsageError(`unexpected argument "${positionals[command.maxPositionals]}": safe-restart ${command.usage}`);
    }
    return await command.run(values as Values, positionals, io);
  } catch (error) {
    const { text, code } = describeError(error);
    io.stderr.write(`${text}\n`);
    return code;
  }
}

function suggestCommand(word: string): string {
  const close = Object.keys(COMMANDS).find((c) => c.startsWith(word.slice(0, 2)));
  return close ? ` (did you mean "${close}"?)` : '';
}

/** Parse repeated `--var NAME=value` flags. */
export function parseVarFlags(raw: string[] | undefined): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const item of raw ?? []) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new UsageError(`--var expects NAME=value (got "${item}")`);
    const name = item.slice(0, eq);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new UsageError(`--var name "${name}" must match [A-Za-z_][A-Za-z0-9_]*`);
    vars[name] = item.slice(eq + 1);
  }
  return vars;
}

// `node dist/cli.js …` works too (the bin imports the bundle and calls main itself)
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
