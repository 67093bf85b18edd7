/**
 * The generalization step AIB appends to every build (aib-reference §2.3), as scripts isobuild ships in
 * the rendered artifacts. Behaviour follows AIB's defaults; unlike AIB, every wait has its own limit and
 * a failed sysprep prints the Panther logs instead of looping until the build timeout.
 */

export const LINUX_OVERRIDE_PATH = '/tmp/DeprovisioningScript.sh';
export const WINDOWS_OVERRIDE_PATH = 'c:\\DeprovisioningScript.ps1';

export const LINUX_DEPROVISION_SCRIPT = `#!/bin/sh
# isobuild: generalize the VM the way Azure VM Image Builder does before capture.
# A customizer may write ${LINUX_OVERRIDE_PATH} to replace the default below.
set -e
if [ -f ${LINUX_OVERRIDE_PATH} ]; then
  echo "isobuild: running ${LINUX_OVERRIDE_PATH} written by a customizer:"
  cat ${LINUX_OVERRIDE_PATH}
  sudo sh ${LINUX_OVERRIDE_PATH}
  exit 0
fi
WAAGENT=$(command -v waagent 2>/dev/null || echo /usr/sbin/waagent)
if [ ! -x "$WAAGENT" ]; then
  echo "isobuild: cannot deprovision: the Azure Linux agent (waagent) is not installed on this VM." >&2
  echo "isobuild: install walinuxagent, write ${LINUX_OVERRIDE_PATH}, or render with --skip-deprovision for test VMs." >&2
  exit 1
fi
echo "isobuild: running $WAAGENT -force -deprovision+user"
sudo "$WAAGENT" -force -deprovision+user && export HISTSIZE=0 && sync
`;

export const WINDOWS_DEPROVISION_SCRIPT = `# isobuild: generalize the VM the way Azure VM Image Builder does before capture.
# A customizer may write ${WINDOWS_OVERRIDE_PATH} to replace the default below.
$ErrorActionPreference = 'Stop'
if (Test-Path '${WINDOWS_OVERRIDE_PATH}') {
  Write-Output 'isobuild: running ${WINDOWS_OVERRIDE_PATH} written by a customizer:'
  Get-Content '${WINDOWS_OVERRIDE_PATH}'
  & '${WINDOWS_OVERRIDE_PATH}'
  exit $LASTEXITCODE
}

function Wait-ServiceRunning([string]$Name, [int]$TimeoutSeconds, [switch]$Optional) {
  $deadline = (Get-Date).AddSeconds($TimeoutSeconds)
  while ((Get-Date) -lt $deadline) {
    $service = Get-Service -Name $Name -ErrorAction SilentlyContinue
    if ($null -eq $service -and $Optional) { return }
    if ($null -ne $service -and $service.Status -eq 'Running') { Write-Output "isobuild: $Name is running"; return }
    Start-Sleep -Seconds 5
  }
  throw "isobuild: the service $Name did not reach Running within $TimeoutSeconds s; the VM may be too small or the Azure guest agent missing."
}

Wait-ServiceRunning -Name 'RdAgent' -TimeoutSeconds 600
Wait-ServiceRunning -Name 'WindowsAzureTelemetryService' -TimeoutSeconds 300 -Optional
Wait-ServiceRunning -Name 'WindowsAzureGuestAgent' -TimeoutSeconds 600

foreach ($unattend in @("$env:SystemRoot\\system32\\Sysprep\\unattend.xml", "$env:SystemRoot\\Panther\\unattend.xml")) {
  if (Test-Path $unattend) { Remove-Item $unattend -Force; Write-Output "isobuild: removed $unattend" }
}

& "$env:SystemRoot\\System32\\Sysprep\\Sysprep.exe" /oobe /generalize /quiet /quit
$deadline = (Get-Date).AddMinutes(30)
while ($true) {
  $state = (Get-ItemProperty 'HKLM:\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Setup\\State').ImageState
  Write-Output "isobuild: ImageState $state"
  if ($state -eq 'IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE') { break }
  if ((Get-Date) -gt $deadline) {
    Write-Output 'isobuild: sysprep did not finish within 30 minutes. Last lines of the Panther logs:'
    foreach ($log in @("$env:SystemRoot\\System32\\Sysprep\\Panther\\setupact.log", "$env:SystemRoot\\System32\\Sysprep\\Panther\\setuperr.log")) {
      if (Test-Path $log) { Write-Output "--- $log"; Get-Content $log -Tail 40 }
    }
    throw 'isobuild: sysprep did not generalize the VM (see the Panther log lines above; Appx packages installed for one user are a common cause).'
  }
  Start-Sleep -Seconds 5
}
`;
