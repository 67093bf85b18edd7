/**
 * A Windows build VM's inventory, collected with one PowerShell script over WinRM: the installed programs
 * (the Uninstall registry keys, 64- and 32-bit), the installed hotfixes, and the OS caption, version and
 * build. The script prints a marker line and then one JSON document, so profile noise before it is skipped.
 */
import type { InstalledPackage, Inventory } from './inventory.js';
import { sortPackages } from './package-order.js';

/** The line before the inventory's JSON. */
export const WINDOWS_INVENTORY_MARKER = '--isobuild-inventory--';

/**
 * Prints `WINDOWS_INVENTORY_MARKER`, then (compressed JSON):
 * `{"os":{"caption":S,"version":S,"build":S},"programs":[{"name":S,"version":S,"publisher":S,"arch":"x64"|"x86"}…],"hotfixes":[S…]}`
 * Programs without a DisplayName are not listed (Windows Installer components, updates' own keys).
 */
export const WINDOWS_INVENTORY_SCRIPT = `$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
function Get-IsobuildPrograms($path, $arch) {
  Get-ItemProperty -Path $path -ErrorAction SilentlyContinue |
    Where-Object { $_.DisplayName } |
    ForEach-Object { [pscustomobject]@{ name = [string]$_.DisplayName; version = [string]$_.DisplayVersion; publisher = [string]$_.Publisher; arch = $arch } }
}
$os = Get-CimInstance -ClassName Win32_OperatingSystem
$inventory = [ordered]@{
  os = [ordered]@{ caption = [string]$os.Caption; version = [string]$os.Version; build = [string]$os.BuildNumber }
  programs = @(
    Get-IsobuildPrograms 'HKLM:\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\*' 'x64'
    Get-IsobuildPrograms 'HKLM:\\SOFTWARE\\WOW6432Node\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\*' 'x86'
  )
  hotfixes = @(Get-HotFix | ForEach-Object { [string]$_.HotFixID })
}
Write-Output '${WINDOWS_INVENTORY_MARKER}'
$inventory | ConvertTo-Json -Depth 4 -Compress
`;

/**
 * Reads the script's stdout: the JSON after the marker line. Takes PowerShell's quirks as they come: a
 * single program or hotfix as a bare object or string instead of an array, arrays wrapped as
 * `{"value":[…],"Count":n}`, null or missing fields, the same entry twice (a program in two Uninstall keys).
 * Throws, saying what is missing, when there is no marker or no JSON after it.
 */
export function parseWindowsInventory(
  stdout: string,
  collectedAt: string = new Date().toISOString(),
): Inventory {
  const document = readDocument(stdout);
  const os = asRecord(document.os);
  if (!os) throw new Error('The Windows inventory has no "os" object: the inventory script did not finish.');
  const packages = new Map<string, InstalledPackage>();
  for (const program of asList(document.programs)) {
    const record = asRecord(program);
    const name = text(record?.name);
    if (!record || !name) continue; // a key without DisplayName is no installed program (the script skips those too)
    const arch = text(record.arch);
    const publisher = text(record.publisher);
    add(packages, {
      kind: 'windows-program',
      name,
      version: text(record.version),
      ...(arch ? { arch } : {}),
      ...(publisher ? { publisher } : {}),
    });
  }
  for (const hotfix of asList(document.hotfixes)) {
    // Get-HotFix objects when a variant of the script sends them whole: HotFixID is the KB id.
    const name = text(asRecord(hotfix)?.HotFixID ?? hotfix);
    if (name) add(packages, { kind: 'windows-hotfix', name, version: '' });
  }
  return {
    os: {
      id: 'windows',
      name: text(os.caption),
      version: text(os.version),
      ...(text(os.build) ? { build: text(os.build) } : {}),
    },
    packages: sortPackages([...packages.values()]),
    collectedAt,
  };
}

function readDocument(stdout: string): Record<string, unknown> {
  const lines = stdout.split(/\r?\n/);
  // The line that is the marker alone: a transcript that echoes the script has it inside a longer line.
  const at = lines.map((line) => line.trim()).lastIndexOf(WINDOWS_INVENTORY_MARKER);
  if (at < 0) {
    throw new Error(
      `The Windows inventory output has no "${WINDOWS_INVENTORY_MARKER}" line: the inventory script did not run, or failed before printing it.`,
    );
  }
  // trim() also drops a byte-order mark that an encoding change may put before the JSON.
  const json = lines
    .slice(at + 1)
    .join('\n')
    .trim();
  if (!json)
    throw new Error('The Windows inventory output ends at its marker line: ConvertTo-Json printed nothing.');
  let document: unknown;
  try {
    document = JSON.parse(json);
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    throw new Error(
      `The Windows inventory after the marker line is not JSON (${why}): ${JSON.stringify(json.slice(0, 120))}`,
    );
  }
  const record = asRecord(document);
  if (!record) throw new Error('The Windows inventory after the marker line is JSON but not an object.');
  return record;
}

/** One entry per kind, name, arch and version; of duplicates, one that names its publisher is kept. */
function add(packages: Map<string, InstalledPackage>, pkg: InstalledPackage): void {
  const key = JSON.stringify([pkg.kind, pkg.name, pkg.arch ?? '', pkg.version]);
  const seen = packages.get(key);
  if (!seen || (!seen.publisher && pkg.publisher)) packages.set(key, pkg);
}

/** PowerShell's ways of sending a list: an array, one bare item, null, or Windows PowerShell's wrapper. */
function asList(value: unknown): unknown[] {
  if (value === null || value === undefined) return [];
  if (Array.isArray(value)) return value as unknown[];
  const record = asRecord(value);
  if (record && Array.isArray(record.value) && 'Count' in record) return record.value as unknown[];
  return [value];
}

function asRecord(value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

/** A field as text: null and missing are '', numbers (a version PowerShell typed) their digits. */
function text(value: unknown): string {
  if (typeof value === 'string') return value.trim();
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return '';
}
