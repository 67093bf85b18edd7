/** Finds the installed Packer and its version, which decides what the rendered HCL may use. */
import { execa } from 'execa';
import { IsobuildError } from '../errors.js';

export interface PackerInfo {
  readonly path: string;
  readonly version: string;
  /** Packer 1.7 added `required_plugins` and `packer init`; 1.6 cannot load external plugins. */
  readonly supportsPlugins: boolean;
}

export async function detectPacker(path = 'packer', signal?: AbortSignal): Promise<PackerInfo> {
  let stdout: string;
  try {
    ({ stdout } = await execa(path, ['version'], {
      timeout: 30_000,
      cancelSignal: signal,
      env: { CHECKPOINT_DISABLE: '1' },
      stdin: 'ignore',
    }));
  } catch (error) {
    if (signal?.aborted) throw signal.reason;
    const code = (error as { code?: string }).code;
    throw new IsobuildError(
      'packerMissing',
      code === 'ENOENT'
        ? `Packer was not found (${path === 'packer' ? 'no packer on PATH' : path}). Install it with "apt-get install packer" (or run "make deps"), or point --packer at the binary.`
        : `"${path} version" failed: ${(error as { shortMessage?: string }).shortMessage ?? String(error)}.`,
    );
  }
  const version = /Packer v(\d+\.\d+\.\d+)/.exec(stdout)?.[1];
  if (!version)
    throw new IsobuildError(
      'packerMissing',
      `"${path} version" printed no version ("${stdout.slice(0, 80)}"); is it really Packer?`,
    );
  return { path, version, supportsPlugins: compareVersions(version, '1.7.0') >= 0 };
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
