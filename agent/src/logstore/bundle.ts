/**
 * The build bundle: what a run executed, archived next to its logs (AIB's isolated builds promise that
 * transparency) so anyone can inspect or reproduce it. Packing takes the rendered Packer files, the
 * downloaded artifacts with their sha256 (isobuild-render.json) and the effective configuration with
 * secrets removed. Unpacking is defensive: regular files and directories only, every path inside the
 * target directory, and limits on entry count and total size.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { isAbsolute, normalize, sep } from 'node:path';
import { IsobuildError } from '../errors.js';

export const BUNDLE_LIMITS = { maxEntries: 10_000, maxBytes: 2 * 1024 ** 3 } as const;

/** Packs `entries` (paths relative to `cwd`) into a gzip tarball at `file`. */
export async function packBundle(file: string, cwd: string, entries: readonly string[]): Promise<void> {
  const tar = await import('tar');
  await tar.create({ gzip: true, file, cwd, portable: true, noMtime: false }, [...entries]);
}

/** Writes the effective configuration (Secrets serialise as "***") where the bundle picks it up. */
export async function writeEffectiveConfig(file: string, config: object): Promise<void> {
  await writeFile(file, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
}

/**
 * Unpacks a bundle tarball into `dir`, refusing anything that could write outside it: absolute paths,
 * `..`, links and device files. Throws an IsobuildError naming the first offending entry.
 */
export async function unpackBundle(
  file: string,
  dir: string,
  limits: { readonly maxEntries: number; readonly maxBytes: number } = BUNDLE_LIMITS,
): Promise<number> {
  const tar = await import('tar');
  await mkdir(dir, { recursive: true });
  let entries = 0;
  let bytes = 0;
  let refused: string | undefined;
  const refuse = (why: string): false => {
    refused ??= why;
    return false;
  };
  await tar.extract({
    file,
    cwd: dir,
    strict: true,
    preservePaths: false,
    preserveOwner: false,
    noChmod: true,
    filter: (path, entry) => {
      const type = 'type' in entry ? entry.type : 'File';
      const size = 'size' in entry && typeof entry.size === 'number' ? entry.size : 0;
      if (type !== 'File' && type !== 'Directory' && type !== 'OldFile' && type !== 'ContiguousFile')
        return refuse(`"${path}" is a ${type}; bundles hold only files and directories`);
      const clean = normalize(path);
      if (
        isAbsolute(path) ||
        clean === '..' ||
        clean.startsWith(`..${sep}`) ||
        clean.split(sep).includes('..')
      )
        return refuse(`"${path}" points outside the target directory`);
      if (++entries > limits.maxEntries) return refuse(`more than ${limits.maxEntries} entries`);
      bytes += size;
      if (bytes > limits.maxBytes) return refuse(`more than ${limits.maxBytes} bytes unpacked`);
      return true;
    },
  });
  if (refused) {
    throw new IsobuildError(
      'artifactFailed',
      `the build bundle was not fully unpacked into ${dir}: ${refused}. Entries that were safe are there; the bundle itself may have been tampered with.`,
    );
  }
  return entries;
}
