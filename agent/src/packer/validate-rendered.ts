/**
 * Runs `packer validate` on a rendered file with throwaway credentials, proving the HCL loads in the
 * installed Packer. The credentials are generated per call and deleted afterwards.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { execa } from 'execa';
import { IsobuildError } from '../errors.js';
import { PACKER_VARIABLES } from '../packer-contract.js';
import { packerEnvironment } from './packer-environment.js';

export async function packerValidate(packerPath: string, file: string, signal?: AbortSignal): Promise<void> {
  const scratch = await mkdtemp(join(tmpdir(), 'isobuild-validate-'));
  try {
    const key = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({
      type: 'pkcs1',
      format: 'pem',
    });
    const keyFile = join(scratch, 'throwaway_rsa');
    await writeFile(keyFile, key, { mode: 0o600 });
    const result = await execa(packerPath, ['validate', basename(file)], {
      cwd: dirname(file),
      reject: false,
      timeout: 60_000,
      cancelSignal: signal,
      stdin: 'ignore',
      // The user's plugins must be visible: a rendered file that requires one fails to load without it.
      extendEnv: false,
      env: packerEnvironment({
        tmpDir: scratch,
        userPlugins: true,
        variables: {
          [PACKER_VARIABLES.sshKeyFile]: keyFile,
          [PACKER_VARIABLES.winrmPassword]: 'throwaway-Passw0rd',
        },
      }),
    });
    if (signal?.aborted) throw signal.reason;
    if (result.exitCode !== 0) {
      throw new IsobuildError(
        'packerRejected',
        `packer validate rejected ${file}; this is a bug in isobuild's rendering:\n${(result.stdout + result.stderr).trim()}`,
      );
    }
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
