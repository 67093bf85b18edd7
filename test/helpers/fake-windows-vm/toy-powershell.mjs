// A toy PowerShell for the fake Windows VM: enough to run the scripts tests upload (Write-Host,
// Write-Output, echo, Write-Error as a CLIXML error record, Start-Sleep, exit N, throw). Everything else
// is ignored. It proves plumbing (output, errors, exit codes, timing), not Windows semantics.
// Usage: node toy-powershell.mjs <script.ps1>   (Windows exit codes are 32-bit; a Unix exit status keeps
// 8 bits, so with an IPC channel the full code is also sent as a message.)
import { readFileSync } from 'node:fs';

const script = readFileSync(process.argv[2], 'utf8').replace(/^\uFEFF/, '');
const unquote = (text) => text.trim().replace(/^(['"])(.*)\1$/s, '$2');
const clixml = (message) =>
  `#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04"><S S="Error">${message
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')}_x000D__x000A_</S></Objs>`;

for (const raw of script.split(/\r?\n|;\s*(?=(?:[^"']|"[^"]*"|'[^']*')*$)/)) {
  const line = raw.trim();
  let match;
  if ((match = /^(?:Write-Host|Write-Output|echo)\s+(.*)$/i.exec(line))) {
    process.stdout.write(`${unquote(match[1])}\r\n`);
  } else if ((match = /^Write-Error\s+(.*)$/i.exec(line))) {
    process.stderr.write(clixml(unquote(match[1])));
  } else if ((match = /^Start-Sleep\s+(?:-Seconds\s+)?(\d+(?:\.\d+)?)$/i.exec(line))) {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Number(match[1]) * 1000);
  } else if ((match = /^throw\s+(.*)$/i.exec(line))) {
    process.stderr.write(clixml(unquote(match[1])));
    process.exitCode = 1;
    break;
  } else if ((match = /^exit\s+(-?\d+)$/i.exec(line))) {
    process.exitCode = Number(match[1]);
    break;
  }
}

if (process.send) {
  const exitCode = process.exitCode ?? 0;
  process.send({ exitCode }, () => process.exit(exitCode & 0xff));
}
