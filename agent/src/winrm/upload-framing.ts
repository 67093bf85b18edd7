/**
 * How an upload's bytes are cut up: byte ranges for parallel writers, how much of a file fits one Send
 * envelope under the server's MaxEnvelopeSize, and the framing on the writer's stdin (base64 lines, so
 * nothing on the way to PowerShell's text reader can alter a byte). Pure: no I/O.
 */

/** Windows' MaxEnvelopeSizekb since Server 2012 (500 KiB). */
export const WINDOWS_DEFAULT_ENVELOPE_BYTES = 500 * 1024;
/** The older default (Server 2008 R2) and what WS-Man clients assume: the one step down after a fault. */
export const FALLBACK_ENVELOPE_BYTES = 150 * 1024;
/** Larger envelopes save nothing measurable and cost memory per shell. */
export const MAX_ENVELOPE_BYTES = 4 * 1024 * 1024;
/** Bytes of file per stdin line; its base64 (64 KiB) is a line any text reader takes in one piece. */
export const LINE_RAW_BYTES = 48 * 1024;
/** Room left in every envelope for what its size estimate cannot see (an End attribute, a longer id). */
const ENVELOPE_MARGIN_BYTES = 256;

/** The envelope limit to plan with: the server's if it said, else Windows' default, never above the cap. */
export function envelopeLimit(serverBytes: number | undefined): number {
  return Math.min(serverBytes ?? WINDOWS_DEFAULT_ENVELOPE_BYTES, MAX_ENVELOPE_BYTES);
}

/** Stdin bytes one Send may carry: they travel base64-encoded inside an envelope of `overheadBytes`. */
export function stdinCapacity(envelopeBytes: number, overheadBytes: number): number {
  const room = envelopeBytes - overheadBytes - ENVELOPE_MARGIN_BYTES;
  return room <= 0 ? 0 : Math.floor(room / 4) * 3;
}

const lineLength = (raw: number): number => 4 * Math.ceil(raw / 3) + 1;

/** File bytes whose framed lines fit `capacity` stdin bytes: whole lines, then one shorter line. */
export function fileBytesPerSend(capacity: number): number {
  const whole = Math.floor(capacity / lineLength(LINE_RAW_BYTES));
  const rest = capacity - whole * lineLength(LINE_RAW_BYTES);
  const tail = rest > 1 ? Math.floor((rest - 1) / 4) * 3 : 0;
  return whole * LINE_RAW_BYTES + tail;
}

/** The stdin bytes for a piece of the file: base64 lines of at most LINE_RAW_BYTES, each ended by "\n". */
export function frameLines(raw: Buffer): Buffer {
  const lines: string[] = [];
  for (let at = 0; at < raw.length; at += LINE_RAW_BYTES)
    lines.push(raw.subarray(at, at + LINE_RAW_BYTES).toString('base64'), '\n');
  return Buffer.from(lines.join(''), 'latin1');
}

export interface ByteRange {
  readonly offset: number;
  readonly length: number;
}

/**
 * `size` bytes cut into at most `parts` contiguous ranges of at least `minRange` bytes each (one range for a
 * small file, and always one, possibly empty, for an empty file).
 */
export function splitRanges(size: number, parts: number, minRange: number): ByteRange[] {
  const count = Math.max(1, Math.min(Math.floor(parts), Math.floor(size / Math.max(1, minRange))));
  const base = Math.floor(size / count);
  const ranges: ByteRange[] = [];
  for (let i = 0, offset = 0; i < count; i++) {
    const length = i === count - 1 ? size - offset : base;
    ranges.push({ offset, length });
    offset += length;
  }
  return ranges;
}
