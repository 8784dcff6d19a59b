// The contract every check module fulfils: ONE attempt, a verdict, and exactly why.
import type { Probe } from '../recipe/types.js';
import type { LookupAddress } from 'node:dns';

export interface AttemptError {
  /** Stable code: ECONNREFUSED, ETIMEDOUT, ENOTFOUND, HTTP_STATUS, BODY_MISMATCH, TLS_UNTRUSTED, PG_AUTH_FAILED ... */
  code: string;
  message: string;
}

export interface HttpEvidence {
  status: number;
  headers: Record<string, string>;
  /** First bytes of the body (at most 64 KiB read, a short snippet kept). */
  bodySnippet: string;
}

export interface AttemptResult {
  ok: boolean;
  /** One human line: "connected to 127.0.0.1:5432", "HTTP 503 from http://...". Never contains a password. */
  detail: string;
  error: AttemptError | null;
  /** Addresses tried, in order ("127.0.0.1:8080", "[::1]:8080"). */
  addresses?: string[];
  http?: HttpEvidence;
  /** Tail of a command's output (at most 4 KiB). */
  output?: string;
}

/** How long a lookup may take: aborting the signal cancels it (the promise rejects at once, nothing stays pending). */
export interface LookupOptions {
  signal?: AbortSignal;
  /** give up (EAI_AGAIN) after this long; default: the resolver's own limit (resolv.conf timeout × attempts) */
  timeoutMs?: number;
}

/** Resolves a host name to every address, like dns.promises.lookup(host, { all: true }). Injected by tests. */
export type Resolver = (host: string, options?: LookupOptions) => Promise<LookupAddress[]>;

export interface AttemptContext {
  /** Aborted when the attempt's deadline passes or the run is cancelled. Every socket/process must be released on abort. */
  signal: AbortSignal;
  /** The attempt's deadline in ms (the signal fires at the same moment). */
  timeoutMs: number;
  resolver?: Resolver;
  /** Environment for commands (the run-time variables), layered over process.env. */
  env?: Record<string, string>;
  /** The state directory (a `recipe:` check reads another recipe's lock and journals there). */
  stateDir?: string;
}

export type AttemptFn<P extends Probe = Probe> = (probe: P, ctx: AttemptContext) => Promise<AttemptResult>;
