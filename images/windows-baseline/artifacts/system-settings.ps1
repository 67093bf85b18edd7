<#
  isobuild example: machine settings applied as LocalSystem (runElevated + runAsSystem).
  Some settings (service configuration, Defender preferences) behave more predictably as SYSTEM than
  as the elevated build user. Idempotent: each setting is checked before it is changed.
#>
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
Set-StrictMode -Version Latest

function Write-Step([string]$Message) { Write-Host "[system-settings] $Message" }

$identity = [Security.Principal.WindowsIdentity]::GetCurrent()
Write-Step "running as $($identity.Name)"
if (-not $identity.IsSystem) {
    Write-Warning 'not running as SYSTEM; set "runAsSystem": true (with "runElevated": true) on this step'
}

# 1. Print Spooler: not needed on servers that are not print servers (CVE-2021-34527 and friends).
$spooler = Get-Service -Name 'Spooler' -ErrorAction SilentlyContinue
if ($null -eq $spooler) {
    Write-Step 'unchanged: Print Spooler is not installed'
} else {
    if ($spooler.Status -ne 'Stopped') {
        Stop-Service -Name 'Spooler' -Force
        Write-Step 'stopped: Print Spooler'
    }
    if ($spooler.StartType -ne 'Disabled') {
        Set-Service -Name 'Spooler' -StartupType Disabled
        Write-Step 'disabled: Print Spooler'
    } else {
        Write-Step 'unchanged: Print Spooler is disabled'
    }
}

# 2. Microsoft Defender: real-time protection on, potentially unwanted apps blocked.
#    Best effort: some SKUs ship without Defender, or it runs in passive mode next to another product.
if (Get-Command -Name 'Set-MpPreference' -ErrorAction SilentlyContinue) {
    try {
        $pref = Get-MpPreference
        if ($pref.DisableRealtimeMonitoring) {
            Set-MpPreference -DisableRealtimeMonitoring $false
            Write-Step 'enabled: Defender real-time monitoring'
        } else {
            Write-Step 'unchanged: Defender real-time monitoring is on'
        }
        if ($pref.PUAProtection -ne 1) {
            Set-MpPreference -PUAProtection Enabled
            Write-Step 'enabled: Defender PUA protection'
        } else {
            Write-Step 'unchanged: Defender PUA protection is on'
        }
    } catch {
        Write-Warning "could not configure Microsoft Defender: $($_.Exception.Message)"
    }
} else {
    Write-Warning 'Microsoft Defender cmdlets not found; skipping Defender settings'
}

# 3. Record that this step ran.
$marker = 'HKLM:\SOFTWARE\isobuild\Baseline'
if (-not (Test-Path -Path $marker)) { New-Item -Path $marker -Force | Out-Null }
New-ItemProperty -Path $marker -Name 'SystemSettingsAppliedBy' -Value $identity.Name -PropertyType String -Force | Out-Null
New-ItemProperty -Path $marker -Name 'SystemSettingsAppliedBySid' -Value $identity.User.Value -PropertyType String -Force | Out-Null
Write-Step "set: $marker\SystemSettingsAppliedBy = $($identity.Name) ($($identity.User.Value))"

Write-Step 'done'
