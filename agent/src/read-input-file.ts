/**
 * Reads a file the user named (template, parameters, SSH key, CA) without ever blocking: a FIFO, socket
 * or device would make a plain open() or read() wait forever in a thread that no signal can interrupt.
 * The file is opened non-blocking, checked to be a regular file on the same descriptor (no race with a
 * swapped path), and read up to a limit. It is synchronous on purpose: inputs are small (a few MB at most)
 * and read once at start; a regular file on a local disk does not block, while a hung network filesystem
 * would hang any read, sync or not.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { IsobuildError, type ErrorCode } from './errors.js';

export interface InputFile {
  /** How messages name the file, e.g. "the SSH key file /x (--ssh-key-file)". */
  readonly label: string;
  readonly maxBytes: number;
  /** Says why the limit exists, e.g. "templates are limited to … bytes (ARM's limit)". */
  readonly limitReason?: string;
  /** Error code for every failure; `usage` for flags, `templateUnreadable` for templates. */
  readonly code: ErrorCode;
  /** What to do, appended to every message. */
  readonly hint: string;
}

const OPEN_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY;

export function readInputFile(path: string, input: InputFile): Buffer {
  const fail = (why: string): IsobuildError =>
    new IsobuildError(input.code, `cannot read ${input.label}: ${why}; ${input.hint}`);
  let fd: number;
  try {
    fd = openSync(path, OPEN_FLAGS);
  } catch (error) {
    throw fail(describeOpenError(error));
  }
  try {
    const info = fstatSync(fd);
    if (info.isDirectory()) throw fail('it is a directory');
    if (!info.isFile())
      throw fail(`it is ${kindOf(info)}, not a regular file (reading it could block forever)`);
    if (info.size > input.maxBytes)
      throw fail(`it is ${info.size} bytes: ${input.limitReason ?? `the limit is ${input.maxBytes} bytes`}`);
    // Read one byte more than fstat promised: a file that grows while it is read is noticed, not truncated.
    const buffer = Buffer.alloc(info.size + 1);
    let length = 0;
    for (;;) {
      const bytesRead = readSync(fd, buffer, length, buffer.length - length, length);
      length += bytesRead;
      if (bytesRead === 0 || length >= buffer.length) break;
    }
    if (length > info.size) throw fail('it grew while being read; try again once it is complete');
    return buffer.subarray(0, length);
  } catch (error) {
    if (error instanceof IsobuildError) throw error;
    throw fail((error as NodeJS.ErrnoException).code ?? String(error));
  } finally {
    closeSync(fd);
  }
}

function describeOpenError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  switch (code) {
    case 'ENOENT':
      return 'no such file';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'ENOTDIR':
      return 'a part of the path is not a directory';
    case 'ELOOP':
      return 'too many symbolic links';
    case 'ENXIO':
      return 'it is a socket or a device without a reader';
    default:
      return code ?? String(error);
  }
}

function kindOf(info: {
  isFIFO(): boolean;
  isSocket(): boolean;
  isCharacterDevice(): boolean;
  isBlockDevice(): boolean;
}): string {
  if (info.isFIFO()) return 'a FIFO (named pipe)';
  if (info.isSocket()) return 'a socket';
  if (info.isCharacterDevice()) return 'a character device';
  if (info.isBlockDevice()) return 'a block device';
  return 'a special file';
}
