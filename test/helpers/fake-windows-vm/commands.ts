// What the fake Windows VM does with a command line. Packer's WinRM communicator sends a few fixed shapes
// (winrm-notes §3): winrmcp's `echo <base64> >> "file"` uploads and its restore/cleanup scripts, the
// connect and restart checks, `shutdown`, and the powershell / windows-shell provisioners' invocations.
// Those are emulated against a sandbox directory that stands for C:\; uploaded .ps1 files run through a
// toy PowerShell (Write-Host, Write-Error, exit N, Start-Sleep) unless they are isobuild's staged-File step
// (staged-file-step.ts), .bat files through /bin/sh for echo lines. isobuild's own -EncodedCommand scripts
// are emulated by their shape: its upload (upload-scripts.ts), the staged-File step, and the removal of its
// staging directories (staging-removal.ts). Anything else runs under /bin/sh in the sandbox, which is what
// pywinrm's tests send.
import { spawn, type ChildProcess } from 'node:child_process';
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { decodeEncodedCommand } from '../../../agent/src/winrm/powershell.js';
import { EXIT_REPORTED, finishedProcess } from './finished-process.js';
import { startStagedFileStep, type StagedFileStepBehaviour } from './staged-file-step.js';
import { startStagingRemoval, type StagingRemovalBehaviour } from './staging-removal.js';
import { startUploadScript, type UploadScriptBehaviour } from './upload-scripts.js';
import { mentionsRegistry, type FakeMachineState } from './machine-state.mjs';

export interface FakeVmBehaviour
  extends UploadScriptBehaviour, StagedFileStepBehaviour, StagingRemovalBehaviour {
  /** The directory standing for C:\ */
  readonly sandbox: string;
  readonly hostname: string;
  /** `shutdown /r`: the VM drops connections for this long. */
  readonly onRestart: (downMs: number) => void;
  readonly restartDownMs?: number;
  /**
   * What the VM's PowerShell would print for scripts the toy PowerShell cannot run (real Windows work:
   * registry, services). A test states the outcome; what it checks is everything around the script.
   */
  readonly scripts?: readonly {
    readonly match: RegExp;
    readonly stdout: string;
    readonly exitCode: number;
  }[];
  /** Uninstall keys, hotfixes and OS at start (machine-state.mjs; default: Windows Server 2022 Datacenter). */
  readonly machineState?: FakeMachineState;
  /** How long isobuild's inventory script takes (registry and Get-HotFix queries; default 300 ms). */
  readonly inventoryDelayMs?: number;
}

const TOY_POWERSHELL = join(import.meta.dirname, 'toy-powershell.mjs');

export function startCommand(commandLine: string, vm: FakeVmBehaviour): ChildProcess {
  const script = decodeEncodedCommand(commandLine);
  if (script !== undefined) return runScript(script, vm);

  const upload = /^echo ([A-Za-z0-9+/=]+) >> "([^"]+)"$/.exec(commandLine.trim());
  if (upload) {
    const file = mapPath(upload[2]!, vm);
    mkdirSync(dirname(file), { recursive: true });
    appendFileSync(file, `${upload[1]}\r\n`);
    return done(0);
  }

  if (/^shutdown\s/i.test(commandLine)) {
    if (/\/a\b/i.test(commandLine)) return done(0);
    if (/packer restart test/i.test(commandLine)) return done(0); // not rebooting (any more)
    // Windows goes down just after shutdown.exe returns: reboot once its exit has been reported (the
    // server says when a Receive did), not on a fixed timer that a slow machine would outrun.
    const child = done(0);
    child.once(EXIT_REPORTED, () => setTimeout(() => vm.onRestart(vm.restartDownMs ?? 3_000), 200));
    return child;
  }

  // Packer's elevated wrapper registers a scheduled task; run the task's command directly instead.
  const ps1File = /-file\s+"?([^"\s]+\.ps1)"?/i.exec(commandLine)?.[1];
  if (ps1File && /packer-elevated-shell/i.test(ps1File)) {
    const wrapper = readFileSync(mapPath(ps1File, vm), 'utf8');
    const inner = /<Arguments>([\s\S]*?)<\/Arguments>/.exec(wrapper)?.[1];
    if (inner) {
      const command = unescapeXml(inner)
        .replace(/^\/c\s+/i, '')
        .replace(/\s*>\s*\S+\.out\s+2>&1\s*$/i, '');
      return startCommand(command, vm);
    }
  }
  // A plain -Command "…" (e.g. a restartCheckCommand).
  const inline = /^powershell(?:\.exe)?\b[^"]*?-Command\s+"(.*)"\s*$/is.exec(commandLine);
  if (inline && !/&\s*'[^']+\.ps1'/.test(inline[1]!)) return runScript(inline[1]!, vm);
  // powershell provisioner: -file "x.ps1", or "& { … &'x.ps1'; exit $LastExitCode }".
  const ps1 = /-file\s+"?([^"\s]+\.ps1)"?/i.exec(commandLine) ?? /&\s*'([^']+\.ps1)'/.exec(commandLine);
  if (/^powershell/i.test(commandLine) && ps1) return runPs1File(mapPath(ps1[1]!, vm), vm);
  // windows-shell provisioner: set "K=V" && … "c:/Windows/Temp/script.bat"
  const bat = /"([^"]+\.(?:bat|cmd))"\s*$/i.exec(commandLine);
  if (bat) {
    const body = readFileSync(mapPath(bat[1]!, vm), 'utf8').replace(/^@?echo off\s*$/gim, '');
    return spawn('/bin/sh', ['-c', body], { cwd: vm.sandbox, stdio: ['pipe', 'pipe', 'pipe'] });
  }
  return spawn('/bin/sh', ['-c', commandLine], { cwd: vm.sandbox, stdio: ['pipe', 'pipe', 'pipe'] });
}

/**
 * A decoded -EncodedCommand script: isobuild's upload and staging removal, Packer's fixed checks and
 * winrmcp's scripts, else the toy PowerShell.
 */
function runScript(script: string, vm: FakeVmBehaviour): ChildProcess {
  const upload = startUploadScript(script, (path) => mapPath(path, vm), vm);
  if (upload) return upload;
  const removal = startStagingRemoval(script, (path) => mapPath(path, vm), vm.sandbox, vm);
  if (removal) return removal;
  const staged = startStagedFileStep(script, (path) => mapPath(path, vm), vm);
  if (staged) return staged;
  if (/WinRM connected\./.test(script)) return done(0, 'WinRM connected.\r\n');
  if (/restarted\./.test(script) && /GetHostName/i.test(script))
    return done(0, `${vm.hostname} restarted.\r\n`);
  const paths = [...script.matchAll(/GetFullPath\("([^"]+)"/g)].map((m) => m[1]!);
  if (paths.length === 2 && /FromBase64String/.test(script)) {
    // winrmcp's restore: decode the temp file's base64 lines into the destination.
    const [temp, destination] = paths.map((p) => mapPath(p, vm)) as [string, string];
    const bytes = readFileSync(temp, 'latin1')
      .split(/\r?\n/)
      .filter(Boolean)
      .map((line) => Buffer.from(line, 'base64'));
    mkdirSync(dirname(destination), { recursive: true });
    writeFileSync(destination, Buffer.concat(bytes));
    return done(0);
  }
  if (paths.length === 1 && /Remove-Item \$tmp_file_path\b/.test(script)) {
    // winrmcp's cleanup: its temp file, resolved with GetFullPath, removed if there.
    rmSync(mapPath(paths[0]!, vm), { force: true });
    return done(0);
  }
  // Any other Remove-Item of a literal path (by -Path, -LiteralPath or position). A variable or a parameter
  // name is no path: such a script is the toy PowerShell's.
  const removed = /Remove-Item\s+(?:-(?:Literal)?Path\s+)?(?![$-])["']?([^"'\s;]+)["']?/i.exec(script);
  if (removed && !/Write-Host/.test(script) && !mentionsRegistry(script)) {
    rmSync(mapPath(removed[1]!, vm), { force: true, recursive: true });
    return done(0);
  }
  const file = join(vm.sandbox, 'Windows', 'Temp', `encoded-${process.hrtime.bigint()}.ps1`);
  writeFileSync(file, script);
  return runPs1File(file, vm);
}

/** A .ps1 on the VM: a test's stated outcome if one matches, a staged-File step, else the toy PowerShell. */
function runPs1File(file: string, vm: FakeVmBehaviour): ChildProcess {
  const content = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const known = vm.scripts?.find((rule) => rule.match.test(content));
  if (known) return done(known.exitCode, known.stdout);
  const staged = startStagedFileStep(content, (path) => mapPath(path, vm), vm);
  if (staged) return staged;
  // The IPC channel carries the full 32-bit exit code (3010 does not fit a Unix exit status).
  const toyArgs = [file, vm.sandbox, String(vm.inventoryDelayMs ?? 300)];
  return spawn(process.execPath, [TOY_POWERSHELL, ...toyArgs], { stdio: ['pipe', 'pipe', 'pipe', 'ipc'] });
}

/** C:\Windows\Temp\x, c:/windows/temp/x, %TEMP%\x → the sandbox, case-insensitively for existing parts. */
export function mapPath(windowsPath: string, vm: FakeVmBehaviour): string {
  const expanded = windowsPath
    .replace(/%(TEMP|TMP)%|\$env:(TEMP|TMP)/gi, 'C:\\Windows\\Temp')
    .replace(/%SYSTEMROOT%|\$env:SystemRoot/gi, 'C:\\Windows');
  const parts = expanded
    .replace(/^[a-z]:/i, '')
    .split(/[\\/]+/)
    .filter(Boolean);
  let current = vm.sandbox;
  for (const part of parts) {
    const existing = statSync(current, { throwIfNoEntry: false })?.isDirectory()
      ? readdirSync(current).find((entry) => entry.toLowerCase() === part.toLowerCase())
      : undefined;
    current = join(current, existing ?? part);
  }
  return current;
}

function unescapeXml(text: string): string {
  return text
    .replace(/&#(\d+);/g, (_, code: string) => String.fromCharCode(Number(code)))
    .replace(/&#x([0-9a-f]+);/gi, (_, code: string) => String.fromCharCode(parseInt(code, 16)))
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

/** A finished "process" with fixed output, for emulated commands. */
function done(exitCode: number, stdout = ''): ChildProcess {
  return finishedProcess(exitCode, stdout);
}
