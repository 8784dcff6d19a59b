// Rewrites an output file with its secrets redacted: a step writes its log itself, through a file
// descriptor safe-restart never sees the bytes of, so the log is redacted after the step, in place of it.
import { closeSync, constants, openSync, readSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';

const CHUNK_BYTES = 1024 * 1024;
/** A line longer than this is redacted in pieces (a secret across the cut would be missed). */
const MAX_CARRY_CHARS = 16 * 1024 * 1024;

/**
 * Redacts `path` line by line (bounded memory) into a private temp file beside it, then renames that over
 * it. Leaves the file alone when nothing changed, so a background process that still appends to it keeps
 * writing where the log is read. Returns whether the file was rewritten; throws when it could not be.
 */
export function redactFile(path: string, redact: (text: string) => string): boolean {
  const temp = `${path}.redacting-${process.pid}`;
  const input = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  let output: number | null = null;
  // the temp file is ours to remove only once we created it (O_EXCL: never someone else's)
  let leftover = false;
  try {
    output = openSync(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    leftover = true;
    const changed = copyRedacted(input, output, redact);
    closeSync(output);
    output = null;
    if (changed) {
      renameSync(temp, path);
      leftover = false;
    }
    return changed;
  } finally {
    closeSync(input);
    if (output !== null) closeSync(output);
    if (leftover) unlinkSync(temp);
  }
}

/** Copies input to output through redact, a line at a time; true when anything was redacted. */
function copyRedacted(input: number, output: number, redact: (text: string) => string): boolean {
  const decoder = new StringDecoder('utf8');
  const buffer = Buffer.alloc(CHUNK_BYTES);
  let changed = false;
  let carry = '';
  const emit = (text: string): void => {
    const clean = redact(text);
    if (clean !== text) changed = true;
    writeSync(output, clean);
  };
  for (let n = readSync(input, buffer); n > 0; n = readSync(input, buffer)) {
    carry += decoder.write(buffer.subarray(0, n));
    const cut = carry.length > MAX_CARRY_CHARS ? carry.length : carry.lastIndexOf('\n') + 1;
    if (cut > 0) {
      emit(carry.slice(0, cut));
      carry = carry.slice(cut);
    }
  }
  carry += decoder.end();
  if (carry) emit(carry);
  return changed;
}
