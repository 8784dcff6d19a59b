// The service watch: while a started release is being proven (after_start hooks, gates), the service manager
// says at once when the service died, so the phase fails now instead of polling a dead port until a timeout.
// One small interface; process.ts implements it for spawned processes, and systemd/supervisord plug in the same way.

export interface ServiceWatch {
  /** Settles with one "reason" line (plus evidence lines) when the service failed; never settles while it is healthy. */
  readonly failure: Promise<WatchFailure>;
  /** Stop watching (the run is about to stop the service itself, or the proof is over). */
  stop(): void;
  /** Look once, now: when a gate just failed, the service may have died a moment ago (null = it is alive). */
  probe(): Promise<WatchFailure | null>;
}

export interface WatchFailure {
  /** "process 4122 (node server.mjs) exited with code 1 after 0.4s" */
  reason: string;
  /** The last lines of the service's log or journal, for the failure detail and the evidence. */
  evidence: string[];
}

/** A watch that never fires: a service whose manager cannot tell (a `start.run` command). */
export const NO_WATCH: ServiceWatch = { failure: new Promise<WatchFailure>(() => {}), stop() {}, probe: async () => null };

/** A watch that asks the manager every `everyMs` (`look` says what failed, or null while healthy). */
export function pollingWatch(look: () => Promise<WatchFailure | null>, everyMs: number): ServiceWatch {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const failure = new Promise<WatchFailure>((resolve) => {
    const tick = async (): Promise<void> => {
      if (stopped) return;
      const failed = await look().catch(() => null);
      if (stopped) return;
      if (failed) {
        resolve(failed);
        return;
      }
      timer = setTimeout(() => void tick(), everyMs);
    };
    timer = setTimeout(() => void tick(), everyMs);
  });
  return {
    failure,
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
    probe: look,
  };
}

/**
 * Race `work` against the watch: when the service fails first, `work`'s signal is aborted (its checks report
 * `cancelled`), it is awaited so every probe is released, and the watch's reason is the result.
 */
export async function raceWatch<T>(
  watch: ServiceWatch,
  signal: AbortSignal,
  work: (signal: AbortSignal) => Promise<T>,
  /** when the work itself failed, the service may have died a moment before: its exit explains the failure better */
  failedWork: (result: T) => boolean = () => false,
): Promise<{ failed: WatchFailure } | { result: T }> {
  const local = new AbortController();
  const onAbort = (): void => local.abort(signal.reason);
  if (signal.aborted) local.abort(signal.reason);
  else signal.addEventListener('abort', onAbort, { once: true });
  let failed: WatchFailure | null = null;
  const watched = watch.failure.then((f) => {
    failed = f;
    local.abort(new Error(f.reason));
  });
  try {
    const result = await work(local.signal);
    if (!failed && failedWork(result)) {
      // a gate that saw the connection reset by a dying process fails a moment before the watch's next look
      const now = await watch.probe().catch(() => null);
      if (now && !failed) failed = now;
    }
    // a failure that arrived while the work was winding down still decides
    return failed ? { failed } : { result };
  } finally {
    signal.removeEventListener('abort', onAbort);
    void watched;
  }
}
