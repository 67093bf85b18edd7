// What a test leaves open on the fake Windows VM: the shells opened since a snapshot that are still open.
import type { FakeWindowsVm } from './server.js';

/** The shells open now, taken before a test acts so that only its own shells count. */
export const shellSnapshot = (vm: FakeWindowsVm): ReadonlySet<string> => new Set(vm.openShellIds());

/**
 * The shells opened since `before` that are still open, once there are none or 5 s have passed: on a loaded
 * machine the fake may answer a Delete after the client has moved on, so the count can lag; a leak stays.
 */
export async function shellsOpenedSince(vm: FakeWindowsVm, before: ReadonlySet<string>): Promise<string[]> {
  const opened = (): string[] => vm.openShellIds().filter((id) => !before.has(id));
  const deadline = Date.now() + 5_000;
  while (opened().length > 0 && Date.now() < deadline)
    await new Promise((resolve) => setTimeout(resolve, 100));
  return opened();
}

/**
 * The last command of a Packer powershell step, its cleanup script. Packer 1.6.6 kills its plugins as soon as
 * the build ends, and under load that can come before the plugin's Delete of this shell (docs/decisions.md 38).
 */
const PACKER_LAST_COMMAND =
  /^powershell -executionpolicy bypass "& \{ .*packer-cleanup-[\w-]+\.ps1'; exit \$LastExitCode \}"$/;

/** Of `shells`, those that are not the shell of Packer's last command. */
export function notPackersLast(vm: FakeWindowsVm, shells: readonly string[]): string[] {
  return shells.filter((id) => {
    const lines = vm.shellCommands(id);
    return !(lines.length === 1 && PACKER_LAST_COMMAND.test(lines[0]!));
  });
}
