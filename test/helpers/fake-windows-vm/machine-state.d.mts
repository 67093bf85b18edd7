// Types of machine-state.mjs (plain JavaScript, shared with the toy PowerShell).

/** A registry key's values: REG_SZ as strings, REG_DWORD/REG_QWORD as numbers. */
export type RegistryValues = Record<string, string | number>;

export type UninstallArch = 'x64' | 'x86';

export interface FakeMachineState {
  /** Win32_OperatingSystem's Caption, Version and BuildNumber. */
  os: { caption: string; version: string; buildNumber: string };
  /**
   * The subkeys of `HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall` (x64) and of its
   * WOW6432Node twin (x86), by key name, with their values (DisplayName, DisplayVersion, Publisher, …).
   */
  uninstall: Record<UninstallArch, Record<string, RegistryValues>>;
  /** HotFixIDs (`KB5005112`) in installation order. */
  hotfixes: string[];
}

export const UNINSTALL_PATHS: Readonly<Record<UninstallArch, string>>;
export const DEFAULT_MACHINE_STATE: FakeMachineState;
export function readMachineState(sandbox: string): FakeMachineState;
export function writeMachineState(sandbox: string, state: FakeMachineState): void;
export function seedMachineState(sandbox: string, initial?: FakeMachineState): void;
export function editMachineState<T>(sandbox: string, change: (state: FakeMachineState) => T): T;
export function mentionsRegistry(script: string): boolean;
export function uninstallKeyOf(path: string): { arch: UninstallArch; name: string | undefined } | undefined;
export function storedKeyName(keys: Record<string, RegistryValues>, name: string): string | undefined;
export function keysInRegistryOrder(keys: Record<string, RegistryValues>): string[];
export function hotfixId(text: string): string | undefined;
