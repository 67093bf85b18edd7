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

/** A Packer JSON null builder that reaches `vm` over WinRM-HTTPS (the fake Windows VM's self-signed cert). */
export function winrmNullBuilder(vm: {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
}): Record<string, unknown> {
  return {
    type: 'null',
    communicator: 'winrm',
    winrm_host: vm.host,
    winrm_port: vm.port,
    winrm_username: vm.user,
    winrm_password: vm.password,
    winrm_use_ssl: true,
    winrm_insecure: true,
    winrm_timeout: '1m',
  };
}
