<#
  isobuild example: in-VM validation for the windows-baseline image.
  Checks every part of the baseline, reports all failures, then exits 1 if there were any.
  Read-only: changes nothing on the VM.
#>
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
Set-StrictMode -Version Latest

$failures = New-Object System.Collections.Generic.List[string]
function Test-Check([string]$Description, [scriptblock]$Check) {
    try {
        $ok = [bool](& $Check)
    } catch {
        $ok = $false
        $Description = "$Description ($($_.Exception.Message))"
    }
    if ($ok) {
        Write-Host "[validate] ok: $Description"
    } else {
        Write-Host "[validate] FAILED: $Description"
        $failures.Add($Description)
    }
}

function Get-RegistryString([string]$Path, [string]$Name) {
    $item = Get-ItemProperty -Path $Path -Name $Name -ErrorAction SilentlyContinue
    if ($null -eq $item) { return $null }
    return [string]$item.$Name
}

$marker = 'HKLM:\SOFTWARE\isobuild\Baseline'
$policies = 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System'

Test-Check 'baseline marker HKLM:\SOFTWARE\isobuild\Baseline\Version is 1.0.0' { (Get-RegistryString $marker 'Version') -eq '1.0.0' }
Test-Check 'system settings step ran as SYSTEM (S-1-5-18)' { (Get-RegistryString $marker 'SystemSettingsAppliedBySid') -eq 'S-1-5-18' }
Test-Check 'logon banner (LegalNoticeCaption) is set' { -not [string]::IsNullOrEmpty((Get-RegistryString $policies 'LegalNoticeCaption')) }
Test-Check 'C:\ProgramData\isobuild\baseline.json names windows-baseline' {
    (Get-Content -Path 'C:\ProgramData\isobuild\baseline.json' -Raw | ConvertFrom-Json).name -eq 'windows-baseline'
}
Test-Check 'C:\ProgramData\isobuild\image-build-info.txt exists' { Test-Path -Path 'C:\ProgramData\isobuild\image-build-info.txt' -PathType Leaf }
Test-Check 'local group Ops exists' { $null -ne (Get-LocalGroup -Name 'Ops' -ErrorAction SilentlyContinue) }
Test-Check 'time zone is UTC' { (Get-TimeZone).Id -eq 'UTC' }
Test-Check 'Print Spooler is disabled' {
    $svc = Get-Service -Name 'Spooler' -ErrorAction SilentlyContinue
    ($null -eq $svc) -or ($svc.StartType -eq 'Disabled')
}

if ($failures.Count -gt 0) {
    Write-Host "[validate] windows-baseline validation failed: $($failures.Count) check(s) failed:"
    $failures | ForEach-Object { Write-Host "  - $_" }
    exit 1
}
Write-Host '[validate] windows-baseline validation passed'
exit 0
