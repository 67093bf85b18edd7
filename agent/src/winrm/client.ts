/**
 * isobuild's own WinRM client (no npm package is usable: see docs/decisions.md). Runs a command in a cmd
 * shell the way Packer's communicator does: Create shell (UTF-8 codepage), Command, Receive until Done
 * (a TimedOut fault means "ask again"), exit code and both streams as bytes, Signal terminate, Delete.
 * A command can also be fed through its stdin (WS-Man Send), which is how uploads stream files.
 * Every call takes an AbortSignal; an abort terminates the remote command and deletes the shell.
 */
import {
  ACTIONS,
  bodies,
  commandIdOf,
  envelope,
  isEnvelopeTooLarge,
  isTimedOut,
  maxEnvelopeBytesOf,
  parseFault,
  parseResponse,
  RESOURCE_CONFIG,
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
  /** What ending a command and deleting its shell may take after a failure or an abort (default 10 s). */
  readonly cleanupTimeoutMs?: number;
}

/** The server refused a request for being over its MaxEnvelopeSizekb (Windows answers HTTP 413). */
export class EnvelopeTooLargeError extends WinRmError {
  constructor(message: string) {
    super('protocol', message);
    this.name = 'EnvelopeTooLargeError';
  }
}

/** A command started with its stdin open: feed it with `send`, then `finish` it; `close` always. */
export interface CommandWithInput {
  /** Bytes of a Send envelope for this command without any input: what each piece of input adds to. */
  readonly sendOverheadBytes: number;
  /** One Send: `data` onto the command's stdin; `end` closes stdin after it. */
  send(data: Buffer, end: boolean, signal?: AbortSignal): Promise<void>;
  /** Receives until the command is done (after the last Send). */
  finish(options?: RunOptions): Promise<RunResult>;
  /** Signal terminate (stops the command if it still runs), then Delete the shell; safe to call twice. */
  close(budget?: AbortSignal): Promise<void>;
}

export class WinRmClient {
  private readonly transport: WinRmTransport;
  private readonly operationTimeout: string;
  private readonly requestTimeoutMs: number;

  constructor(
    private readonly target: WinRmTarget,
    private readonly options: WinRmClientOptions = {},
  ) {
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
      return await this.collect(shellId, commandId, options);
    } finally {
      await this.cleanUp(shellId, commandId);
    }
  }

  /**
   * Starts `command` with its stdin open for `send`. Its stdin is a pipe, not a console
   * (WINRS_CONSOLEMODE_STDIN=FALSE): a console would cook the input and cap its line length.
   */
  async startWithInput(command: string, signal?: AbortSignal): Promise<CommandWithInput> {
    const shellId = await this.createShell(signal);
    let commandId: string | undefined;
    try {
      const started = await this.call(ACTIONS.command, bodies.command(command), signal, shellId, {
        WINRS_CONSOLEMODE_STDIN: 'FALSE',
        WINRS_SKIP_CMD_SHELL: 'FALSE',
      });
      commandId = commandIdOf(started.body);
      if (!commandId) throw new WinRmError('protocol', 'the Command response carries no CommandId');
    } catch (error) {
      await this.cleanUp(shellId, commandId);
      throw error;
    }
    const id = commandId;
    let closed: Promise<void> | undefined;
    return {
      sendOverheadBytes: Buffer.byteLength(this.message(ACTIONS.send, bodies.send(id, '', true), shellId)),
      send: async (data, end, sendSignal) => {
        await this.call(ACTIONS.send, bodies.send(id, data.toString('base64'), end), sendSignal, shellId);
      },
      finish: (options = {}) => this.collect(shellId, id, options),
      close: (budget) => (closed ??= this.cleanUp(shellId, id, budget)),
    };
  }

  /**
   * The server's MaxEnvelopeSizekb in bytes, read with a WS-Man Get of winrm/config as Windows' own tools
   * do; undefined when the server will not say (only administrators may read the configuration).
   */
  async serverMaxEnvelopeBytes(signal?: AbortSignal): Promise<number | undefined> {
    try {
      const reply = await this.call(
        ACTIONS.get,
        bodies.empty(),
        signal,
        undefined,
        undefined,
        RESOURCE_CONFIG,
      );
      return maxEnvelopeBytesOf(reply.body);
    } catch (error) {
      if (error instanceof WinRmError && error.kind === 'protocol') return undefined;
      throw error;
    }
  }

  /** Another client for the same target on a connection of its own (a shell's requests are sequential). */
  sibling(): WinRmClient {
    return new WinRmClient(this.target, this.options);
  }

  /** Runs a PowerShell script via -EncodedCommand; CLIXML error records on stderr become readable text. */
  async runPowerShell(script: string, options: RunOptions = {}): Promise<RunResult> {
    const result = await this.run(encodePowerShell(script), options);
    return { ...result, stderr: decodeClixml(result.stderr) };
  }

  close(): void {
    this.transport.close();
  }

  /**
   * Creates a shell. The caller's abort does not cut the Create short: the server may create the shell
   * anyway, and one whose id never arrived would stay open until Windows' idle timeout (hours). So an abort
   * waits for the reply within the cleanup budget, deletes the shell it names, then rejects.
   */
  private async createShell(signal?: AbortSignal): Promise<string> {
    signal?.throwIfAborted();
    const hangUp = new AbortController();
    const created = this.call(ACTIONS.create, bodies.createShell(), hangUp.signal, undefined, {
      WINRS_NOPROFILE: 'FALSE',
      WINRS_CODEPAGE: '65001',
    }).then((reply) => {
      const shellId = shellIdOf(reply.body);
      if (!shellId) throw new WinRmError('protocol', 'the Create response carries no ShellId');
      return shellId;
    });
    if (!signal) return created;
    let onAbort = (): void => undefined;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(signal.reason as Error);
      signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      return await Promise.race([created, aborted]);
    } catch (error) {
      if (!signal.aborted) throw error;
      const budget = this.cleanupBudget();
      const giveUp = (): void => hangUp.abort(budget.reason);
      budget.addEventListener('abort', giveUp, { once: true });
      try {
        await this.cleanUp(await created, undefined, budget);
      } catch {
        // No shell was made, or its reply did not come within the budget.
      } finally {
        budget.removeEventListener('abort', giveUp);
      }
      throw signal.reason;
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  private cleanupBudget(): AbortSignal {
    return AbortSignal.timeout(this.options.cleanupTimeoutMs ?? 10_000);
  }

  /** Receive until Done: both streams as bytes, decoded once at the end so split characters stay whole. */
  private async collect(shellId: string, commandId: string, options: RunOptions): Promise<RunResult> {
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    for (;;) {
      const reply = await this.receive(shellId, commandId, options.signal);
      if (!reply) continue; // TimedOut: the command is still running quietly
      for (const chunk of reply.stdout) options.onOutput?.('stdout', chunk);
      for (const chunk of reply.stderr) options.onOutput?.('stderr', chunk);
      stdout.push(...reply.stdout);
      stderr.push(...reply.stderr);
      if (reply.done) {
        return {
          exitCode: reply.exitCode ?? 0,
          stdout: Buffer.concat(stdout).toString('utf8'),
          stderr: Buffer.concat(stderr).toString('utf8'),
        };
      }
    }
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
  private async cleanUp(
    shellId: string,
    commandId: string | undefined,
    budget: AbortSignal = this.cleanupBudget(),
  ): Promise<void> {
    // Cleanup has its own budget and runs even when the caller's signal has fired.
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

  private message(
    action: string,
    body: string,
    shellId?: string,
    options?: Record<string, string>,
    resourceUri?: string,
  ): string {
    return envelope(
      {
        endpoint: this.transport.endpoint,
        action,
        operationTimeout: this.operationTimeout,
        ...(resourceUri ? { resourceUri } : {}),
        ...(shellId ? { shellId } : {}),
        ...(options ? { options } : {}),
      },
      body,
    ).xml;
  }

  private async call(
    action: string,
    body: string,
    signal: AbortSignal | undefined,
    shellId?: string,
    options?: Record<string, string>,
    resourceUri?: string,
  ): Promise<ParsedResponse> {
    const xml = this.message(action, body, shellId, options, resourceUri);
    const reply = await this.transport.post(xml, this.requestTimeoutMs, signal);
    const operation = action.split('/').pop();
    if (reply.status === 413) {
      throw new EnvelopeTooLargeError(
        `the server refused a ${Buffer.byteLength(xml)}-byte ${operation} request as larger than its MaxEnvelopeSizekb (HTTP 413)`,
      );
    }
    if (!/application\/soap\+xml/i.test(reply.contentType)) {
      throw new WinRmError(
        'not-winrm',
        `the server answered HTTP ${reply.status} with ${reply.contentType || 'no content type'}, not a SOAP message: is this a WinRM listener?`,
      );
    }
    if (reply.status !== 200) {
      const fault = parseFault(reply.body);
      if (fault && isTimedOut(fault)) throw new TimedOut();
      const text = `WinRM fault on ${operation}: ${fault?.reason ?? `HTTP ${reply.status}`}${fault?.wsmanCode ? ` (code ${fault.wsmanCode})` : ''}`;
      if (fault && action === ACTIONS.send && isEnvelopeTooLarge(fault))
        throw new EnvelopeTooLargeError(text);
      throw new WinRmError('protocol', text);
    }
    return parseResponse(reply.body);
  }
}

class TimedOut extends Error {}
