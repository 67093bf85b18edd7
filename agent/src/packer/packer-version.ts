/** Finds the installed Packer and its version, which decides what the rendered HCL may use. */
import { execFile } from 'node:child_process';
import { IsobuildError } from '../errors.js';
import type { PackerInfo } from '../packer-contract.js';
import { packerEnvironment } from './packer-environment.js';

export type { PackerInfo } from '../packer-contract.js';

export function detectPacker(path = 'packer', signal?: AbortSignal): Promise<PackerInfo> {
  // node:child_process rather than execa here: this runs on every build and execa's import alone costs ~70 ms.
  return new Promise((resolve, reject) => {
    execFile(
      path,
      ['version'],
      {
        timeout: 30_000,
        signal,
        env: packerEnvironment(),
      },
      (error, stdout) => {
        if (signal?.aborted) return reject(signal.reason as Error);
        if (error) {
          const code = (error as NodeJS.ErrnoException).code;
          return reject(
            new IsobuildError(
              'packerMissing',
              code === 'ENOENT'
                ? `Packer was not found (${path === 'packer' ? 'no packer on PATH' : path}). Install it with "apt-get install packer" (or run "make deps"), or point --packer at the binary.`
                : `"${path} version" failed: ${error.message.split('\n')[0]}.`,
            ),
          );
        }
        const version = /Packer v(\d+\.\d+\.\d+)/.exec(stdout)?.[1];
        if (!version) {
          return reject(
            new IsobuildError(
              'packerMissing',
              `"${path} version" printed no version ("${stdout.slice(0, 80)}"); is it really Packer?`,
            ),
          );
        }
        resolve({ path, version, supportsPlugins: compareVersions(version, '1.7.0') >= 0 });
      },
    );
  });
}

export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const diff = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (diff !== 0) return Math.sign(diff);
  }
  return 0;
}
