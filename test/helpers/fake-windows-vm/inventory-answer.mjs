// What the fake Windows VM's PowerShell prints for isobuild's software-inventory script
// (agent/src/sbom/windows-inventory.ts): its marker line, then the inventory as Windows PowerShell 5.1's
// `ConvertTo-Json -Compress` writes it, computed from the machine state. The script is recognised by its
// queries, not by its text, so small edits to it keep working.
import { UNINSTALL_PATHS, keysInRegistryOrder } from './machine-state.mjs';

/** Get-ItemProperty over an Uninstall key's children, Get-HotFix and Win32_OperatingSystem. */
export function isInventoryScript(script) {
  return (
    /Get-ItemProperty/i.test(script) &&
    uninstallArchesQueried(script).length > 0 &&
    /Get-HotFix/i.test(script) &&
    /Win32_OperatingSystem/i.test(script)
  );
}

/** The script's stdout, CRLF-terminated lines as on Windows. */
export function inventoryOutput(script, state) {
  const marker = /Write-Output\s+'([^']*)'/i.exec(script)?.[1];
  const programs = uninstallArchesQueried(script).flatMap((arch) => {
    const keys = state.uninstall[arch] ?? {};
    return keysInRegistryOrder(keys)
      .map((name) => keys[name])
      .filter((values) => Boolean(values.DisplayName)) // Where-Object { $_.DisplayName }
      .map((values) => ({
        name: asString(values.DisplayName),
        version: asString(values.DisplayVersion),
        publisher: asString(values.Publisher),
        arch,
      }));
  });
  const inventory = {
    os: { caption: state.os.caption, version: state.os.version, build: state.os.buildNumber },
    programs,
    hotfixes: state.hotfixes,
  };
  return `${marker === undefined ? '' : `${marker}\r\n`}${compressedJson(inventory)}\r\n`;
}

/** The Uninstall views the script reads (`…\Uninstall\*`), in the order it reads them. */
function uninstallArchesQueried(script) {
  const wildcards = Object.entries(UNINSTALL_PATHS).map(([arch, path]) => ({
    arch,
    at: script.toUpperCase().indexOf(`${path.toUpperCase()}\\*`),
  }));
  return wildcards
    .filter(({ at }) => at >= 0)
    .sort((a, b) => a.at - b.at)
    .map(({ arch }) => arch);
}

/** `[string]$value`: a missing value is the empty string. */
function asString(value) {
  return value === undefined || value === null ? '' : String(value);
}

/** ConvertTo-Json -Compress in Windows PowerShell 5.1 (JavaScriptSerializer): it also escapes < > & '. */
function compressedJson(value) {
  if (Array.isArray(value)) return `[${value.map(compressedJson).join(',')}]`;
  if (value !== null && typeof value === 'object')
    return `{${Object.entries(value)
      .map(([key, item]) => `${jsonString(key)}:${compressedJson(item)}`)
      .join(',')}}`;
  return typeof value === 'string' ? jsonString(value) : JSON.stringify(value);
}

function jsonString(text) {
  return JSON.stringify(text).replace(
    /[<>&']/g,
    (character) => `\\u${character.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}
