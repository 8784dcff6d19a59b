// Bounded output capture: the last N bytes of a stream, and reading the last N bytes of a file.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

export const TAIL_BYTES = 4096;

/** Keeps only the last `limit` bytes written to it. */
export class TailBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  constructor(private readonly limit: number = TAIL_BYTES) {}

  push(chunk: Buffer): void {
    if (chunk.length >= this.limit) {
      this.chunks = [chunk.subarray(chunk.length - this.limit)];
      this.size = this.limit;
      return;
    }
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size - (this.chunks[0]?.length ?? 0) >= this.limit) {
      this.size -= (this.chunks.shift() as Buffer).length;
    }
  }

  toString(): string {
    return decodeTail(Buffer.concat(this.chunks, this.size), this.limit);
  }
}

/** Decodes the last `limit` bytes as UTF-8, dropping a multi-byte character cut in half at the start. */
export function decodeTail(bytes: Buffer, limit: number = TAIL_BYTES): string {
  let start = Math.max(0, bytes.length - limit);
  // Skip UTF-8 continuation bytes (10xxxxxx) left over from a character that began before the cut.
  while (start > 0 && start < bytes.length && ((bytes[start] as number) & 0xc0) === 0x80) start++;
  return bytes.subarray(start).toString('utf8');
}

/** The last `limit` bytes of a file as text; '' when it cannot be read. */
export function readFileTail(path: string, limit: number = TAIL_BYTES): string {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return '';
  }
  try {
    const size = fstatSync(fd).size;
    const from = Math.max(0, size - limit);
    const buffer = Buffer.alloc(size - from);
    const read = readSync(fd, buffer, 0, buffer.length, from);
    return decodeTail(buffer.subarray(0, read), limit);
  } catch {
    return '';
  } finally {
    closeSync(fd);
  }
}

/** Reads bytes appended to a file since `offset`, at most `maxBytes` per call (the rest is skipped). */
export function readAppended(path: string, offset: number, maxBytes: number): { bytes: Buffer; offset: number } {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return { bytes: Buffer.alloc(0), offset };
  }
  try {
    const size = fstatSync(fd).size;
    // Truncated under us (log rotation): start again from the beginning.
    if (size < offset) offset = 0;
    if (size === offset) return { bytes: Buffer.alloc(0), offset };
    const from = Math.max(offset, size - maxBytes);
    const buffer = Buffer.alloc(size - from);
    const read = readSync(fd, buffer, 0, buffer.length, from);
    return { bytes: buffer.subarray(0, read), offset: from + read };
  } finally {
    closeSync(fd);
  }
}
