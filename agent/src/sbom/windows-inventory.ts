/**
 * A Windows build VM's inventory, collected with one PowerShell script over WinRM: the installed programs
 * (the Uninstall registry keys, 64- and 32-bit), the installed hotfixes, and the OS caption, version and
 * build. The script prints a marker line and then one JSON document, so profile noise before it is skipped.
 */

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
