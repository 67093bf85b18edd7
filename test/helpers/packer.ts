// Helpers for tests that run the real Packer binary (Debian's packer package).
import { execa } from 'execa';

export async function packerBuild(
  dir: string,
  file: string,
  env: Record<string, string> = {},
): Promise<{ exitCode: number; output: string }> {
  const result = await execa('packer', ['build', '-color=false', file], {
    cwd: dir,
    reject: false,
    env: { CHECKPOINT_DISABLE: '1', TMPDIR: dir, ...env },
    stdin: 'ignore',
    all: true,
  });
  return { exitCode: result.exitCode ?? -1, output: result.all ?? '' };
}
