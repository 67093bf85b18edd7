/**
 * isobuild's own WinRM client (no npm package is usable: see docs/decisions.md). Runs a command in a cmd
 * shell the way Packer's communicator does: Create shell (UTF-8 codepage), Command, Receive until Done
 * (a TimedOut fault means "ask again"), exit code and both streams as bytes, Signal terminate, Delete.
 * Every call takes an AbortSignal; an abort terminates the remote command and deletes the shell.
 */
import {
  ACTIONS,
  bodies,
  commandIdOf,
  envelope,
  isTimedOut,
  parseFault,
  parseResponse,
  receiveChunkOf,
  shellIdOf,
  type ParsedResponse,
} from './soap.js';
import { WinRmError, WinRmTransport, type WinRmTarget } from './transport.js';
import { decodeClixml, encodePowerShell } from './powershell.js';

export interface RunResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunOptions {
  readonly signal?: AbortSignal;
  /** Output as it arrives (bytes, per stream). */
  readonly onOutput?: (stream: 'stdout' | 'stderr', chunk: Buffer) => void;
}

export interface WinRmClientOptions {
  /** How long the server may hold a Receive open before answering TimedOut (default 20 s). */
  readonly operationTimeoutMs?: number;
  /** Per HTTP request, on top of the operation timeout (default 30 s). */
  readonly requestTimeoutMs?: number;
}

export class WinRmClient {
  private readonly transport: WinRmTransport;
  private readonly operationTimeout: string;
  private readonly requestTimeoutMs: number;

  constructor(target: WinRmTarget, options: WinRmClientOptions = {}) {
    this.transport = new WinRmTransport(target);
    const operationMs = options.operationTimeoutMs ?? 20_000;
    this.operationTimeout = `PT${(operationMs / 1000).toFixed(3).replace(/\.?0+$/, '')}S`;
    // The HTTP read timeout must exceed the operation timeout, or every long Receive would fail.
    this.requestTimeoutMs = operationMs + (options.requestTimeoutMs ?? 30_000);
  }

  /** Runs `command` through cmd.exe, as Packer's communicator does. */
  async run(command: string, options: RunOptions = {}): Promise<RunResult> {
    const { signal } = options;
    const shellId = await this.createShell(signal);
    let commandId: string | undefined;
    try {
      const started = await this.call(ACTIONS.command, bodies.command(command), signal, shellId, {
        WINRS_CONSOLEMODE_STDIN: 'TRUE',
        WINRS_SKIP_CMD_SHELL: 'FALSE',
      });
      commandId = commandIdOf(started.body);
      if (!commandId) throw new WinRmError('protocol', 'the Command response carries no CommandId');
      const stdout: Buffer[] = [];
      const stderr: Buffer[] = [];
      for (;;) {
        const reply = await this.receive(shellId, commandId, signal);
        if (!reply) continue; // TimedOut: the command is still running quietly
        for (const chunk of reply.stdout) options.onOutput?.('stdout', chunk);
        for (const chunk of reply.stderr) options.onOutput?.('stderr', chunk);
        stdout.push(...reply.stdout);
        stderr.push(...reply.stderr);
        if (reply.done) {
          return {
            exitCode: reply.exitCode ?? 0,
            // Decoded once at the end, so a character split across chunks stays whole.
            stdout: Buffer.concat(stdout).toString('utf8'),
            stderr: Buffer.concat(stderr).toString('utf8'),
          };
        }
      }
    } finally {
      await this.cleanUp(shellId, commandId);
    }
  }

  /** Runs a PowerShell script via -EncodedCommand; CLIXML error records on stderr become readable text. */
  async runPowerShell(script: string, options: RunOptions = {}): Promise<RunResult> {
    const result = await this.run(encodePowerShell(script), options);
    return { ...result, stderr: decodeClixml(result.stderr) };
  }

  close(): void {
    this.transport.close();
  }

  private async createShell(signal?: AbortSignal): Promise<string> {
    const created = await this.call(ACTIONS.create, bodies.createShell(), signal, undefined, {
      WINRS_NOPROFILE: 'FALSE',
      WINRS_CODEPAGE: '65001',
    });
    const shellId = shellIdOf(created.body);
    if (!shellId) throw new WinRmError('protocol', 'the Create response carries no ShellId');
    return shellId;
  }

  private async receive(shellId: string, commandId: string, signal?: AbortSignal) {
    try {
      return receiveChunkOf(
        (await this.call(ACTIONS.receive, bodies.receive(commandId), signal, shellId)).body,
      );
    } catch (error) {
      if (error instanceof TimedOut) return undefined;
      throw error;
    }
  }

  /** Signal terminate (required after every command, and how an abort stops it), then Delete the shell. */
  private async cleanUp(shellId: string, commandId: string | undefined): Promise<void> {
    // Cleanup has its own budget and runs even when the caller's signal has fired.
    const budget = AbortSignal.timeout(10_000);
    try {
      if (commandId) await this.call(ACTIONS.signal, bodies.signal(commandId), budget, shellId);
    } catch {
      // The command may be gone already; deleting the shell ends it anyway.
    }
    try {
      await this.call(ACTIONS.delete, bodies.empty(), budget, shellId);
    } catch {
      // A shell the server already dropped is fine; a leaked one expires on the server's idle timeout.
    }
  }

  private async call(
    action: string,
    body: string,
    signal: AbortSignal | undefined,
    shellId?: string,
    options?: Record<string, string>,
  ): Promise<ParsedResponse> {
    const message = envelope(
      {
        endpoint: this.transport.endpoint,
        action,
        operationTimeout: this.operationTimeout,
        ...(shellId ? { shellId } : {}),
        ...(options ? { options } : {}),
      },
      body,
    );
    const reply = await this.transport.post(message.xml, this.requestTimeoutMs, signal);
    if (!/application\/soap\+xml/i.test(reply.contentType)) {
      throw new WinRmError(
        'not-winrm',
        `the server answered HTTP ${reply.status} with ${reply.contentType || 'no content type'}, not a SOAP message: is this a WinRM listener?`,
      );
    }
    if (reply.status !== 200) {
      const fault = parseFault(reply.body);
      if (fault && isTimedOut(fault)) throw new TimedOut();
      throw new WinRmError(
        'protocol',
        `WinRM fault on ${action.split('/').pop()}: ${fault?.reason ?? `HTTP ${reply.status}`}${fault?.wsmanCode ? ` (code ${fault.wsmanCode})` : ''}`,
      );
    }
    return parseResponse(reply.body);
  }
}

class TimedOut extends Error {}
