// A toy PowerShell for the fake Windows VM: enough to run the scripts tests upload (Write-Host,
// Write-Output, echo, Write-Error as a CLIXML error record, Start-Sleep, exit N, throw), the registry and
// wusa.exe commands a customizer uses to register or remove programs and hotfixes (toy-machine-cmdlets.mjs),
// and isobuild's inventory script, answered from the machine state (inventory-answer.mjs). Everything else
// is ignored. It proves plumbing (output, errors, exit codes, timing), not Windows semantics.
// Usage: node toy-powershell.mjs <script.ps1> [<sandbox> [<inventory delay ms>]]   (Windows exit codes are
// 32-bit; a Unix exit status keeps 8 bits, so with an IPC channel the full code is also sent as a message.)
import { readFileSync } from 'node:fs';
import { inventoryOutput, isInventoryScript } from './inventory-answer.mjs';
import { readMachineState } from './machine-state.mjs';
import { runMachineCmdlet } from './toy-machine-cmdlets.mjs';

const [scriptFile, sandbox, inventoryDelayMs = '0'] = process.argv.slice(2);
const script = readFileSync(scriptFile, 'utf8').replace(/^\uFEFF/, '');
const unquote = (text) => text.trim().replace(/^(['"])(.*)\1$/s, '$2');
const clixml = (message) =>
  `#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04"><S S="Error">${message
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')}_x000D__x000A_</S></Objs>`;
const sleep = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
let stopOnError = false; // $ErrorActionPreference = 'Stop' (applies to the machine commands' errors)
let lastExitCode = 0;

if (sandbox && isInventoryScript(script)) {
  // Reading the Uninstall keys and Get-HotFix take a noticeable while on Windows.
  sleep(Number(inventoryDelayMs));
  process.stdout.write(inventoryOutput(script, readMachineState(sandbox)));
} else {
  for (const raw of script.split(/\r?\n|;\s*(?=(?:[^"']|"[^"]*"|'[^']*')*$)/)) {
    const line = raw.trim();
    // Output a customizer discards is not printed by the toy anyway.
    const command = line.replace(/^\$null\s*=\s*/i, '').replace(/\s*\|\s*Out-Null$/i, '');
    let match;
    let machine;
    if ((match = /^(?:Write-Host|Write-Output|echo)\s+(.*)$/i.exec(line))) {
      process.stdout.write(`${unquote(match[1])}\r\n`);
    } else if ((match = /^Write-Error\s+(.*)$/i.exec(line))) {
      process.stderr.write(clixml(unquote(match[1])));
    } else if ((match = /^Start-Sleep\s+(?:-Seconds\s+)?(\d+(?:\.\d+)?)$/i.exec(line))) {
      sleep(Number(match[1]) * 1000);
    } else if ((match = /^throw\s+(.*)$/i.exec(line))) {
      process.stderr.write(clixml(unquote(match[1])));
      process.exitCode = 1;
      break;
    } else if ((match = /^exit\s+(-?\d+)$/i.exec(line))) {
      process.exitCode = Number(match[1]);
      break;
    } else if (/^exit\s+\$LASTEXITCODE$/i.test(line)) {
      process.exitCode = lastExitCode;
      break;
    } else if (/^\$ErrorActionPreference\s*=\s*['"]?Stop['"]?$/i.test(line)) {
      stopOnError = true;
    } else if (sandbox && (machine = runMachineCmdlet(command, sandbox))) {
      if (machine.exitCode !== undefined) lastExitCode = machine.exitCode;
      if (machine.error && !['silentlycontinue', 'ignore'].includes(machine.errorAction)) {
        process.stderr.write(clixml(`${command.split(/\s/)[0]} : ${machine.error}`));
        if (stopOnError || machine.errorAction === 'stop') {
          process.exitCode = 1;
          break;
        }
      }
    }
  }
}

if (process.send) {
  const exitCode = process.exitCode ?? 0;
  process.send({ exitCode }, () => process.exit(exitCode & 0xff));
}
