/**
 * Masks credentials in what the VM sends back, byte for byte: the output is handled as latin1 text, so any
 * byte sequence (binary files, partial UTF-8, terminal escapes) comes out unchanged except where a secret's
 * bytes were. A piece that may be the start of a secret is held back until the next piece shows, or until
 * the output has been quiet for a moment (an interactive session must not wait for more output to echo).
 */
import { SecretMasker, StreamMasker } from '../mask-secrets.js';
import type { Output } from './session-io.js';

/** How long held-back bytes wait for more output before they are written as they are. */
const IDLE_FLUSH_MS = 100;

export function maskedOutput(
  write: (bytes: Buffer) => void,
  secrets: readonly string[],
  idleFlushMs = IDLE_FLUSH_MS,
): Output {
  // The secrets as they appear in UTF-8 output, seen through the same latin1 lens as the output.
  const masker = new SecretMasker(secrets.map((s) => Buffer.from(s, 'utf8').toString('latin1')));
  const stream = new StreamMasker(() => masker);
  let timer: NodeJS.Timeout | undefined;
  const flush = (): void => {
    clearTimeout(timer);
    timer = undefined;
    const rest = stream.end();
    if (rest !== '') write(Buffer.from(rest, 'latin1'));
  };
  return {
    write(chunk) {
      const masked = stream.write(chunk.toString('latin1'));
      if (masked !== '') write(Buffer.from(masked, 'latin1'));
      clearTimeout(timer);
      timer = setTimeout(flush, idleFlushMs);
      timer.unref();
    },
    flush,
  };
}
