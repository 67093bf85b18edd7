<#
  isobuild example: Windows Server baseline.
  Runs elevated (runElevated: true) as the build user. Idempotent: every setting is checked before it
  is changed, so running the script twice changes nothing the second time.
  Does not touch the firewall, WinRM or RDP: the build talks to the VM over WinRM.
#>
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
Set-StrictMode -Version Latest

function Write-Step([string]$Message) { Write-Host "[baseline] $Message" }

function Set-RegistryValue([string]$Path, [string]$Name, $Value, [string]$Type) {
    if (-not (Test-Path -Path $Path)) { New-Item -Path $Path -Force | Out-Null }
    $current = Get-ItemProperty -Path $Path -Name $Name -ErrorAction SilentlyContinue
    if ($null -ne $current -and $current.$Name -eq $Value) {
        Write-Step "unchanged: $Path\$Name"
        return
    }
    New-ItemProperty -Path $Path -Name $Name -Value $Value -PropertyType $Type -Force | Out-Null
    Write-Step "set: $Path\$Name = $Value"
}

$os = Get-CimInstance -ClassName Win32_OperatingSystem
Write-Step "starting on $env:COMPUTERNAME ($($os.Caption) $($os.Version)) as $([Security.Principal.WindowsIdentity]::GetCurrent().Name)"

# 1. Folders: C:\buildArtifacts receives the File step's uploads; C:\ProgramData\isobuild holds our settings.
foreach ($dir in 'C:\buildArtifacts', 'C:\ProgramData\isobuild') {
    if (Test-Path -Path $dir -PathType Container) {
        Write-Step "unchanged: $dir exists"
    } else {
        New-Item -Path $dir -ItemType Directory -Force | Out-Null
        Write-Step "created: $dir"
    }
}

# 2. Logon banner (shown before interactive and RDP logons; WinRM is not affected).
$policies = 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System'
Set-RegistryValue $policies 'LegalNoticeCaption' 'Authorized use only' 'String'
Set-RegistryValue $policies 'LegalNoticeText' 'Activity on this system may be monitored and recorded. Built from the isobuild windows-baseline image.' 'String'

# 3. Time zone: servers log in UTC.
if ((Get-TimeZone).Id -eq 'UTC') {
    Write-Step 'unchanged: time zone is UTC'
} else {
    Set-TimeZone -Id 'UTC'
    Write-Step 'set: time zone UTC'
}

# 4. Operations group (members get no rights here; grant them through your own policy).
if (Get-LocalGroup -Name 'Ops' -ErrorAction SilentlyContinue) {
    Write-Step 'unchanged: local group Ops exists'
} else {
    New-LocalGroup -Name 'Ops' -Description 'Operations staff (isobuild windows-baseline)' | Out-Null
    Write-Step 'created: local group Ops'
}

# 5. Baseline marker and build information.
$marker = 'HKLM:\SOFTWARE\isobuild\Baseline'
Set-RegistryValue $marker 'Name' 'windows-baseline' 'String'
Set-RegistryValue $marker 'Version' '1.0.0' 'String'

$buildInfo = @(
    'image_name=windows-baseline'
    'source_image=MicrosoftWindowsServer:WindowsServer:2022-datacenter-azure-edition:latest'
    "build_time_utc=$((Get-Date).ToUniversalTime().ToString('yyyy-MM-ddTHH:mm:ssZ'))"
    "os_version=$($os.Version)"
)
Set-Content -Path 'C:\ProgramData\isobuild\image-build-info.txt' -Value $buildInfo -Encoding ASCII
Write-Step 'wrote: C:\ProgramData\isobuild\image-build-info.txt'

Write-Step 'done'
