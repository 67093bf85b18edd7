/**
 * Makes sure the work directory (run directories, the embedded store) can be used before a build starts,
 * and says why not in words: a file in the way, no permission, a read-only or a kernel pseudo-filesystem.
 * Pseudo-filesystems (/proc, /sys) are refused up front: writes there fail in odd ways or block.
 */
import { mkdir, mkdtemp, rmdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { IsobuildError } from '../errors.js';
import { pseudoFilesystem } from '../pseudo-fs.js';

export async function prepareWorkDir(workDir: string): Promise<void> {
  const unusable = (why: string, cause?: unknown): IsobuildError =>
    new IsobuildError(
      'outputUnwritable',
      `the work directory ${workDir} cannot be used: ${why}. Choose another with --work-dir / ISOBUILD_WORK_DIR.`,
      cause === undefined ? {} : { cause },
    );
  const pseudo = await pseudoFilesystem(workDir);
  if (pseudo) throw unusable(`it is on ${pseudo}, a kernel pseudo-filesystem`);
  try {
    await mkdir(workDir, { recursive: true });
    // Creating and removing an entry proves writability where permission bits do not tell (read-only
    // mounts, root squashing, ACLs).
    await rmdir(await mkdtemp(join(workDir, '.isobuild-write-check-')));
  } catch (error) {
    let code = (error as NodeJS.ErrnoException).code;
    // A recursive mkdir reports ENOENT for a parent it could not create (a read-only mount, say): ask the
    // nearest existing ancestor for the real reason.
    if (code === 'ENOENT') code = (await ancestorWriteError(workDir)) ?? code;
    throw unusable(describe(code), error);
  }
}

async function ancestorWriteError(path: string): Promise<string | undefined> {
  let ancestor = dirname(path);
  while ((await stat(ancestor).catch(() => undefined)) === undefined && dirname(ancestor) !== ancestor)
    ancestor = dirname(ancestor);
  try {
    await rmdir(await mkdtemp(join(ancestor, '.isobuild-write-check-')));
    return undefined;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code;
  }
}

function describe(code: string | undefined): string {
  switch (code) {
    case 'EEXIST':
    case 'ENOTDIR':
      return 'it, or a part of its path, is a file, not a directory';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EROFS':
      return 'it is on a read-only filesystem';
    case 'ENOENT':
      return 'a part of its path does not exist and cannot be created (a dangling symbolic link?)';
    case 'ENOSPC':
      return 'the disk is full';
    default:
      return code ?? 'unknown error';
  }
}
