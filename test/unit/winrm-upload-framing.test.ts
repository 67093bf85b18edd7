/**
 * The upload's arithmetic: which envelope limit it plans with, how many file bytes fit one Send under it
 * (checked against real Send envelopes), the base64 lines on the writer's stdin, and the byte ranges of
 * parallel writers.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bodies, envelope } from '../../agent/src/winrm/soap.js';
import {
  envelopeLimit,
  FALLBACK_ENVELOPE_BYTES,
  fileBytesPerSend,
  frameLines,
  LINE_RAW_BYTES,
  MAX_ENVELOPE_BYTES,
  splitRanges,
  stdinCapacity,
  WINDOWS_DEFAULT_ENVELOPE_BYTES,
} from '../../agent/src/winrm/upload-framing.js';

const ID = '1B3A29C4-6D0E-4F7A-9E55-0C2D4B8A7F31';
const sendEnvelope = (stdin: Buffer, end: boolean): string =>
  envelope(
    {
      endpoint: 'https://build-vm.internal.cloudapp.net:5986/wsman',
      action: 'http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Send',
      operationTimeout: 'PT20S',
      shellId: ID,
    },
    bodies.send(ID, stdin.toString('base64'), end),
  ).xml;
const overhead = Buffer.byteLength(sendEnvelope(Buffer.alloc(0), true));

/** The file bytes back from framed stdin, as the writer reads them: line by line. */
const unframe = (stdin: Buffer): Buffer =>
  Buffer.concat(
    stdin
      .toString('latin1')
      .split('\n')
      .filter(Boolean)
      .map((line) => Buffer.from(line, 'base64')),
  );

describe('envelope limit', () => {
  it("plans with the server's limit when it said, else Windows' 500 KiB, and never above the cap", () => {
    expect(envelopeLimit(undefined)).toBe(WINDOWS_DEFAULT_ENVELOPE_BYTES);
    expect(WINDOWS_DEFAULT_ENVELOPE_BYTES).toBe(512_000);
    expect(envelopeLimit(FALLBACK_ENVELOPE_BYTES)).toBe(153_600);
    expect(envelopeLimit(8192 * 1024)).toBe(MAX_ENVELOPE_BYTES);
  });

  it.each([32 * 1024, FALLBACK_ENVELOPE_BYTES, WINDOWS_DEFAULT_ENVELOPE_BYTES, MAX_ENVELOPE_BYTES])(
    'fills a %i-byte envelope to within one line, never past it',
    (limit) => {
      const raw = Buffer.alloc(fileBytesPerSend(stdinCapacity(limit, overhead)), 0xa5);
      const xml = sendEnvelope(frameLines(raw), true);
      expect(Buffer.byteLength(xml)).toBeLessThanOrEqual(limit);
      expect(Buffer.byteLength(xml)).toBeGreaterThan(limit - 1024);
    },
  );

  it('has no room at all when the overhead alone fills the envelope', () => {
    expect(stdinCapacity(overhead, overhead)).toBe(0);
    expect(fileBytesPerSend(0)).toBe(0);
  });
});

describe('stdin framing', () => {
  it('sends lines of at most 48 KiB of file as base64, each ended by a newline', () => {
    const framed = frameLines(Buffer.alloc(LINE_RAW_BYTES * 2 + 10, 1)).toString('latin1');
    const lines = framed.split('\n');
    expect(lines.map((l) => l.length)).toEqual([65_536, 65_536, 16, 0]);
    expect(framed.endsWith('\n')).toBe(true);
    expect(frameLines(Buffer.alloc(0)).length).toBe(0);
  });

  it('for any capacity, the framed bytes fit it and read back to the same file bytes', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 600_000 }),
        fc.integer({ min: 0, max: 2 ** 31 }),
        (capacity, seed) => {
          const size = fileBytesPerSend(capacity);
          const raw = Buffer.alloc(size);
          for (let i = 0; i < size; i += 997) raw[i] = (seed + i) & 0xff;
          const framed = frameLines(raw);
          expect(framed.length).toBeLessThanOrEqual(capacity);
          // Nearly full: less than one line of slack, plus the rounding of the last line.
          expect(capacity - framed.length).toBeLessThan(4 * (LINE_RAW_BYTES / 3) + 10);
          expect(unframe(framed).equals(raw)).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('byte ranges', () => {
  it('cuts a file into contiguous ranges covering it, no smaller than the minimum', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 10 ** 9 }),
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 1, max: 10 ** 8 }),
        (size, parts, minRange) => {
          const ranges = splitRanges(size, parts, minRange);
          expect(ranges.length).toBeGreaterThanOrEqual(1);
          expect(ranges.length).toBeLessThanOrEqual(parts);
          let next = 0;
          for (const range of ranges) {
            expect(range.offset).toBe(next);
            next += range.length;
          }
          expect(next).toBe(size);
          if (ranges.length > 1) for (const r of ranges) expect(r.length).toBeGreaterThanOrEqual(minRange);
        },
      ),
    );
  });

  it('keeps a small file, and an empty one, in one range', () => {
    expect(splitRanges(10 * 1024 * 1024, 2, 16 * 1024 * 1024)).toEqual([
      { offset: 0, length: 10 * 1024 * 1024 },
    ]);
    expect(splitRanges(0, 4, 1)).toEqual([{ offset: 0, length: 0 }]);
    expect(splitRanges(100, 2, 50)).toEqual([
      { offset: 0, length: 50 },
      { offset: 50, length: 50 },
    ]);
  });
});
