/**
 * Reads one line of Packer's UI output (stdout of `packer build -color=false`): a step marker says which
 * step starts, a "Build … errored" line says why the build failed, and everything else is either noise or
 * text for a failing step's tail, without Packer's `==> null.build_vm: ` prefix.
 */
import { STEP_MARKER } from '../packer-contract.js';

export type PackerLine =
  /** The marker a step's shell-local provisioner prints before the step runs. */
  | { readonly kind: 'step'; readonly tag: string }
  /** Packer's verdict on the build; `text` is the line for the tail (absent when it is noise there). */
  | { readonly kind: 'error'; readonly message: string; readonly text?: string }
  /** Lines a failing step's tail leaves out: the markers' local scripts and blank lines. */
  | { readonly kind: 'noise' }
  /** Anything else: Packer's status lines and the step's own output. */
  | { readonly kind: 'output'; readonly text: string };

/** `    null.build_vm: isobuild-step-start c01` (shell-local output, 4 spaces and the build name). */
const MARKER_LINE = new RegExp(`^\\s+[\\w.]+: ${escapeRegExp(STEP_MARKER)} (\\S+)$`);
/** `Build 'null.build_vm' errored after 1 second 3 milliseconds: <message>` (older Packers omit "after …"). */
const ERROR_LINE = /^Build '[^']+' errored(?: after [^:]*)?: (.*)$/;
const NOISE_LINE = /Running local shell script|^\s*$/;
/** `==> null.build_vm: ` (status lines, remote stderr) or `    null.build_vm: ` (remote stdout). */
const BUILD_PREFIX = /^(==>| {3}) [\w.]+: ?/;

export function readPackerLine(line: string): PackerLine {
  const marker = MARKER_LINE.exec(line);
  if (marker) return { kind: 'step', tag: marker[1]! };
  const noise = NOISE_LINE.test(line);
  const failed = ERROR_LINE.exec(line);
  if (failed)
    return noise
      ? { kind: 'error', message: failed[1]! }
      : { kind: 'error', message: failed[1]!, text: tailText(line) };
  return noise ? { kind: 'noise' } : { kind: 'output', text: tailText(line) };
}

function tailText(line: string): string {
  return line.replace(BUILD_PREFIX, '');
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
