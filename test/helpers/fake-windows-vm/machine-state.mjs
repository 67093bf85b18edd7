// The fake Windows VM's machine state: the programs registered under the Uninstall registry keys (the 64-bit
// view and WOW6432Node's 32-bit view), the installed hotfixes, and Win32_OperatingSystem's identity. It is one
// JSON file in a hidden folder of the sandbox, so every command and shell, the toy PowerShell (a child
// process) and the test read and change the same state, and it survives reconnects and reboots as a real
// registry does. Plain JavaScript because the toy PowerShell runs under plain Node; types in
// machine-state.d.mts.
import { mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const STATE_DIR = '.fake-windows-vm';
const STATE_FILE = 'machine-state.json';

/** The registry paths of the two Uninstall keys, by the architecture the inventory reports for them. */
export const UNINSTALL_PATHS = {
  x64: 'HKLM:\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Uninstall',
  x86: 'HKLM:\\SOFTWARE\\WOW6432Node\\Microsoft\\Windows\\CurrentVersion\\Uninstall',
};

const microsoft = 'Microsoft Corporation';
const vcRuntime = (name, arch) => ({
  DisplayName: `Microsoft Visual C++ 2022 ${arch} ${name} Runtime - 14.38.33135`,
  DisplayVersion: '14.38.33135',
  Publisher: microsoft,
  InstallDate: '20240312',
  SystemComponent: 1,
  WindowsInstaller: 1,
});

/** An Azure Marketplace Windows Server 2022 Datacenter VM, as Get-ItemProperty and Get-HotFix see it. */
export const DEFAULT_MACHINE_STATE = {
  os: {
    caption: 'Microsoft Windows Server 2022 Datacenter',
    version: '10.0.20348',
    buildNumber: '20348',
  },
  uninstall: {
    x64: {
      // Keys without DisplayName, present on every Windows install.
      AddressBook: {},
      'Connection Manager': { SystemComponent: 1 },
      WIC: { NoRemove: 1 },
      '{5B8A3A62-1F0E-4D7C-9B8E-2A6C1D0E4F11}': {
        DisplayName: 'Windows Azure VM Agent - 2.7.41491.1102',
        DisplayVersion: '2.7.41491.1102',
        Publisher: microsoft,
        InstallDate: '20240312',
        EstimatedSize: 48212,
      },
      '{8E6D1C4B-7A52-4F39-B0C2-5D3E9A1F6B27}': vcRuntime('Minimum', 'X64'),
      '{C2F4A7D9-3B18-4E6A-8D05-1F9B2E7C4A63}': vcRuntime('Additional', 'X64'),
    },
    x86: {
      AddressBook: {},
      'Microsoft Edge': {
        DisplayName: 'Microsoft Edge',
        DisplayVersion: '122.0.2365.92',
        Publisher: microsoft,
        InstallLocation: 'C:\\Program Files (x86)\\Microsoft\\Edge\\Application',
      },
      'Microsoft Edge Update': {
        DisplayName: 'Microsoft Edge Update',
        DisplayVersion: '1.3.185.17',
        Publisher: microsoft,
      },
      '{3A7E9F12-6C4D-4B85-A1E0-9D2F5C8B7E34}': vcRuntime('Minimum', 'X86'),
      '{d8bbe9f9-7c5b-42c6-b715-9ee898a2e515}': {
        DisplayName: 'Microsoft Visual C++ 2015-2022 Redistributable (x64) - 14.38.33135',
        DisplayVersion: '14.38.33135.0',
        Publisher: microsoft,
        BundleCachePath:
          'C:\\ProgramData\\Package Cache\\{d8bbe9f9-7c5b-42c6-b715-9ee898a2e515}\\VC_redist.x64.exe',
      },
      '{f1e7e313-06df-4c56-96a9-99fdfd149c51}': {
        DisplayName: 'Microsoft Visual C++ 2015-2022 Redistributable (x86) - 14.38.33135',
        DisplayVersion: '14.38.33135.0',
        Publisher: microsoft,
      },
    },
  },
  /** HotFixIDs in installation order (Get-HotFix's order). */
  hotfixes: ['KB5012170', 'KB5034613', 'KB5035857'],
};

function stateFile(sandbox) {
  return join(sandbox, STATE_DIR, STATE_FILE);
}

export function readMachineState(sandbox) {
  return JSON.parse(readFileSync(stateFile(sandbox), 'utf8'));
}

/** Written to a temporary file and renamed, so a concurrent reader never sees half a state. */
export function writeMachineState(sandbox, state) {
  mkdirSync(join(sandbox, STATE_DIR), { recursive: true });
  const temporary = `${stateFile(sandbox)}.${process.pid}.tmp`;
  writeFileSync(temporary, `${JSON.stringify(state, null, 2)}\n`);
  renameSync(temporary, stateFile(sandbox));
}

/** The state at start: the test's own, else what the sandbox already holds, else the default VM. */
export function seedMachineState(sandbox, initial) {
  if (initial === undefined) {
    try {
      readMachineState(sandbox);
      return;
    } catch {
      // No state yet: a fresh VM.
    }
  }
  writeMachineState(sandbox, structuredClone(initial ?? DEFAULT_MACHINE_STATE));
}

/**
 * Reads, changes and writes the state under a lock, so two shells changing it at once do not lose an edit
 * (each registry or hotfix operation is atomic on Windows too). Returns what `change` returns.
 */
export function editMachineState(sandbox, change) {
  const lock = join(sandbox, STATE_DIR, 'lock');
  for (const started = Date.now(); ;) {
    try {
      mkdirSync(lock);
      break;
    } catch (error) {
      if (error.code !== 'EEXIST') throw error;
      // A lock older than a few seconds belongs to a toy PowerShell killed mid-edit (a Signal or reboot).
      if (Date.now() - lockTakenAt(lock) > 3_000 || Date.now() - started > 10_000)
        rmSync(lock, { recursive: true, force: true });
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
    }
  }
  try {
    const state = readMachineState(sandbox);
    const result = change(state);
    writeMachineState(sandbox, state);
    return result;
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

function lockTakenAt(lock) {
  try {
    return statSync(lock).mtimeMs;
  } catch {
    return Date.now();
  }
}

/** Whether a script names a registry path (HKLM:\…, Registry::HKEY_…), so it is no file cleanup. */
export function mentionsRegistry(script) {
  return /\bHK(?:LM|CU|CR|U|CC):|Registry::/i.test(script);
}

const UNINSTALL_KEY =
  /^(?:HKLM:|(?:Microsoft\.PowerShell\.Core\\)?Registry::(?:HKEY_LOCAL_MACHINE|HKLM))[\\/]+SOFTWARE[\\/]+(WOW6432Node[\\/]+)?Microsoft[\\/]+Windows[\\/]+CurrentVersion[\\/]+Uninstall(?:[\\/]+([^\\/]+))?[\\/]*$/i;

/**
 * `HKLM:\SOFTWARE\[WOW6432Node\]Microsoft\Windows\CurrentVersion\Uninstall\<name>` → its view and key name
 * (`name` undefined for the Uninstall key itself); undefined for any other path.
 */
export function uninstallKeyOf(path) {
  const match = UNINSTALL_KEY.exec(path.trim());
  return match ? { arch: match[1] ? 'x86' : 'x64', name: match[2] } : undefined;
}

/** A key's name as stored, found case-insensitively as the registry does; undefined when absent. */
export function storedKeyName(keys, name) {
  return Object.keys(keys).find((key) => key.toUpperCase() === name.toUpperCase());
}

/**
 * The keys of one Uninstall view in registry enumeration order: sorted by name, case-insensitively and
 * ordinally (so `{GUID}` keys come after names), which is the order Get-ItemProperty returns them in.
 */
export function keysInRegistryOrder(keys) {
  return Object.keys(keys).sort((a, b) => {
    const [left, right] = [a.toUpperCase(), b.toUpperCase()];
    return left < right ? -1 : left > right ? 1 : 0;
  });
}

/** `kb5005112`, `5005112`, `KB5005112` → `KB5005112`; undefined for anything else. */
export function hotfixId(text) {
  const digits = /^(?:KB)?(\d{6,8})$/i.exec(String(text).trim())?.[1];
  return digits ? `KB${digits}` : undefined;
}
