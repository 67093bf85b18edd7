/**
 * A shell session on a Windows build VM over isobuild's WinRM client, through the relay: one PowerShell
 * command with its output streamed and its exit code passed on, or a prompt that runs each line read from
 * stdin as one command until `exit` or the end of input. Each command runs in a fresh WinRM shell that is
 * deleted afterwards, also when the session is aborted.
 */
import { createInterface } from 'node:readline';
import { IsobuildError } from '../errors.js';
import type { WinRmClient } from '../winrm/client.js';
import { decodeClixml, encodePowerShell } from '../winrm/powershell.js';
import { WinRmError } from '../winrm/transport.js';
import { windowsExitStatus } from './exit-status.js';
import type { Output, SessionIo } from './session-io.js';

export interface PowerShellSessionOptions {
  /** Aborting stops the running command (WinRM Signal terminate, then Delete) and ends the session. */
  readonly signal: AbortSignal;
  /** Why the network path broke, by hop (the relay's finding). */
  readonly whyBroken: () => string | undefined;
  /** How messages name the VM, e.g. "build VM 10.0.0.4:5986". */
  readonly label: string;
}

/**
 * Runs `script` and resolves with its exit code (0–255, see exit-status.ts).
 * @throws IsobuildError 'vmUnreachable' (exit 5) when WinRM fails on the way; the signal's reason on abort.
 */
export async function runPowerShellCommand(
  client: WinRmClient,
  script: string,
  io: SessionIo,
  options: PowerShellSessionOptions,
): Promise<number> {
  const stderr = new PowerShellStderr(io.stderr);
  try {
    const result = await client.run(encodePowerShell(script), {
      signal: options.signal,
      onOutput: (stream, chunk) => (stream === 'stdout' ? io.stdout.write(chunk) : stderr.write(chunk)),
    });
    return windowsExitStatus(result.exitCode);
  } catch (error) {
    options.signal.throwIfAborted();
    if (!(error instanceof WinRmError)) throw error;
    throw new IsobuildError(
      'vmUnreachable',
      `the WinRM session on ${options.label} broke: ${(options.whyBroken() ?? error.message).replace(/\.$/, '')}.`,
    );
  } finally {
    stderr.end();
  }
}

/**
 * Prints `prompt` on stderr, runs each line of stdin as a PowerShell command, and resolves at `exit [N]`
 * (with N, or 0) or at the end of input (with the last command's exit code).
 */
export async function runPowerShellPrompt(
  client: WinRmClient,
  prompt: string,
  io: SessionIo,
  options: PowerShellSessionOptions,
): Promise<number> {
  const lines = createInterface({ input: io.stdin, terminal: false, crlfDelay: Infinity });
  const onAbort = (): void => lines.close();
  options.signal.addEventListener('abort', onAbort, { once: true });
  const showPrompt = (): void => {
    io.stdout.flush();
    io.stderr.write(Buffer.from(prompt));
    io.stderr.flush();
  };
  let last = 0;
  try {
    showPrompt();
    for await (const line of lines) {
      const text = line.trim();
      const exit = /^exit(?:\s+(-?\d+))?;?$/i.exec(text);
      if (exit) return exit[1] === undefined ? 0 : windowsExitStatus(Number(exit[1]));
      if (text !== '') last = await runPowerShellCommand(client, text, io, options);
      showPrompt();
    }
    options.signal.throwIfAborted();
    return last;
  } finally {
    options.signal.removeEventListener('abort', onAbort);
    lines.close();
  }
}

/**
 * PowerShell writes error records to stderr as CLIXML: such output is collected and written as readable
 * text at the end of the command; any other stderr is streamed as it comes.
 */
class PowerShellStderr {
  private clixml: Buffer[] | undefined;
  private decided = false;
  private head = Buffer.alloc(0);

  constructor(private readonly output: Output) {}

  write(chunk: Buffer): void {
    if (this.clixml) return void this.clixml.push(chunk);
    if (this.decided) return this.output.write(chunk);
    this.head = Buffer.concat([this.head, chunk]);
    const marker = '#< CLIXML';
    const text = this.head.toString('latin1');
    if (text.startsWith(marker)) this.clixml = [this.head];
    else if (!marker.startsWith(text)) this.pass();
  }

  end(): void {
    if (this.clixml) {
      const text = decodeClixml(Buffer.concat(this.clixml).toString('utf8'));
      if (text !== '') this.output.write(Buffer.from(text.endsWith('\n') ? text : `${text}\n`));
    } else this.pass();
    this.output.flush();
  }

  private pass(): void {
    this.decided = true;
    if (this.head.length > 0) this.output.write(this.head);
    this.head = Buffer.alloc(0);
  }
}
