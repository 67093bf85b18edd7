// A fake Windows build VM for tests (never shipped): an HTTPS WinRM listener with a self-signed certificate,
// Basic and NTLM authentication, and the remote-shell operations (Create, Command, Receive with TimedOut
// faults, Signal, Delete) answered the way Windows answers them, so that independent clients (Debian's
// python3-winrm, Packer 1.6.6) and isobuild's own client can be checked against it. Commands run in a
// sandbox directory through `commands.ts`. See ../../../../shared/docs/winrm-notes.md §4.
// Where uploads depend on it, it behaves like Windows: stdin Send, the MaxEnvelopeSizekb limit (HTTP 413),
// a readable winrm/config, and what Windows spends to create a shell and start cmd.exe or powershell.exe.
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { XMLParser } from 'fast-xml-parser';
import { writeSelfSignedCertificate } from '../self-signed-certificate.js';
import { startCommand, type FakeVmBehaviour } from './commands.js';
import { EXIT_REPORTED } from './finished-process.js';
import { readMachineState, seedMachineState, type FakeMachineState } from './machine-state.mjs';
import { createChallenge, isType1, verifyType3, type NtlmChallenge } from './ntlm-server.js';

export interface FakeWindowsVmOptions {
  readonly user?: string;
  readonly password?: string;
  /** Which authentication schemes the listener accepts. */
  readonly auth?: readonly ('basic' | 'ntlm')[];
  /** Longest a Receive is held before a TimedOut fault (the client's OperationTimeout is honoured if shorter). */
  readonly receiveCapMs?: number;
  readonly host?: string;
  readonly port?: number;
  /**
   * Listen on this Unix socket instead of TCP. Unix sockets cross network namespaces, so a forwarder in a
   * test VM's namespace (socat) can make the fake answer at that VM's address and nowhere else.
   */
  readonly socketPath?: string;
  readonly behaviour?: Partial<FakeVmBehaviour>;
  /** Windows' MaxEnvelopeSizekb: a larger request is refused with HTTP 413 (default 500, as Windows'). */
  readonly maxEnvelopeSizeKb?: number;
  /** Whether the login may read winrm/config (administrators may; others get Access denied). Default true. */
  readonly configReadable?: boolean;
  /** What Windows spends per operation; WINDOWS_COSTS by default, NO_COSTS to measure the fake alone. */
  readonly costs?: Partial<WindowsCosts>;
  /**
   * Test only: each stdin Send is answered this long after it arrives (default 0), so an upload of a few MB
   * takes seconds for sure, as on a slow link (tests of progress lines need one).
   */
  readonly sendDelayMs?: number;
}

/**
 * Time Windows spends before a command does anything: a shell (winrshost.exe) on Create, cmd.exe for
 * every command, and powershell.exe loading .NET before it reads a line of its script or its stdin.
 */
export interface WindowsCosts {
  readonly createShellMs: number;
  readonly cmdStartMs: number;
  readonly powershellStartMs: number;
}
/** Typical of a small Azure VM (tens of ms for a shell and cmd.exe, 0.3–0.5 s for powershell.exe). */
export const WINDOWS_COSTS: WindowsCosts = { createShellMs: 30, cmdStartMs: 20, powershellStartMs: 400 };
export const NO_COSTS: WindowsCosts = { createShellMs: 0, cmdStartMs: 0, powershellStartMs: 0 };

export interface FakeWindowsVm {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  /** The listener's self-signed certificate (PEM) and its SHA-256 fingerprint. */
  readonly certPem: string;
  readonly certFile: string;
  readonly fingerprint256: string;
  /** The VM's "C:\" as a directory on this machine. */
  readonly sandbox: string;
  /** Every command line received, in order. */
  readonly commands: string[];
  /** The registry's Uninstall keys, the hotfixes and the OS as they are now (after what customizers did). */
  machineState(): FakeMachineState;
  /** Shells currently open (a client that forgets Delete leaks them). */
  openShells(): number;
  /** Commands in open shells not yet ended by a Signal (a leaked writer shows here). */
  openCommands(): number;
  /** The ids of the shells open now: a test takes them before it acts, to tell its own shells apart. */
  openShellIds(): string[];
  /** The command lines an open shell ran, in order. */
  shellCommands(shellId: string): string[];
  /** The same as text, for a test's failure message. */
  describeOpenShells(): string;
  /** Requests refused for being over MaxEnvelopeSizekb. */
  envelopeFaults(): number;
  /** Drops every connection and refuses new ones for `ms` (a reboot). */
  reboot(ms: number): void;
  close(): Promise<void>;
}

const NS = {
  s: 'http://www.w3.org/2003/05/soap-envelope',
  a: 'http://schemas.xmlsoap.org/ws/2004/08/addressing',
  w: 'http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd',
  rsp: 'http://schemas.microsoft.com/wbem/wsman/1/windows/shell',
  x: 'http://schemas.xmlsoap.org/ws/2004/09/transfer',
  f: 'http://schemas.microsoft.com/wbem/wsman/1/wsmanfault',
  cfg: 'http://schemas.microsoft.com/wbem/wsman/1/config',
};
const SHELL_ACTION = `${NS.rsp}`;
const parser = new XMLParser({
  removeNSPrefix: true,
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  parseTagValue: false,
  isArray: (name) => ['Option', 'Selector', 'Stream', 'Arguments'].includes(name),
});

interface Command {
  readonly child: ChildProcess;
  readonly out: { stream: 'stdout' | 'stderr'; data: Buffer }[];
  exitCode?: number;
  waiters: (() => void)[];
  /** Before this (Date.now()), the process is still starting: no output yet, stdin not read. */
  readonly readyAt: number;
}

export async function startFakeWindowsVm(options: FakeWindowsVmOptions = {}): Promise<FakeWindowsVm> {
  const user = options.user ?? 'packer';
  const password = options.password ?? 'Fake-Passw0rd!';
  const schemes = options.auth ?? ['basic', 'ntlm'];
  const receiveCapMs = options.receiveCapMs ?? 2_000;
  const maxEnvelopeBytes = (options.maxEnvelopeSizeKb ?? 500) * 1024;
  const costs: WindowsCosts = { ...WINDOWS_COSTS, ...options.costs };
  let envelopeFaults = 0;
  const dir = mkdtempSync(join(tmpdir(), 'isobuild-fake-windows-'));
  const sandbox = join(dir, 'C');
  mkdirSync(join(sandbox, 'Windows', 'Temp'), { recursive: true });
  const host = options.host ?? '127.0.0.1';
  const { cert: certPem } = writeSelfSignedCertificate(dir, {
    commonName: 'fake-windows-vm',
    altNames: ['DNS:localhost', 'DNS:fake-windows-vm', `IP:${host}`],
  });
  const behaviour: FakeVmBehaviour = {
    sandbox,
    hostname: 'FAKE-WINVM',
    onRestart: (ms) => vm.reboot(ms),
    ...options.behaviour,
  };
  seedMachineState(behaviour.sandbox, behaviour.machineState);

  const shells = new Map<string, Map<string, Command>>();
  const shellHistory = new Map<string, string[]>();
  const commands: string[] = [];
  const ntlmChallenges = new WeakMap<Socket, NtlmChallenge>();
  const ntlmAuthenticated = new WeakSet<Socket>();
  const sockets = new Set<Socket>();
  let refuseUntil = 0;

  const server: Server = createServer(
    { key: readFileSync(join(dir, 'key.pem')), cert: certPem, keepAlive: true },
    (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        try {
          serve();
        } catch (error) {
          res.writeHead(500, { 'Content-Type': 'text/plain' }).end(String(error));
        }
      });
      const serve = (): void => {
        const socket = req.socket;
        const reply = (status: number, body: string, headers: Record<string, string> = {}): void => {
          res.writeHead(status, { 'Content-Type': 'application/soap+xml;charset=UTF-8', ...headers });
          res.end(body);
        };
        if (req.method !== 'POST' || req.url?.toLowerCase() !== '/wsman')
          return void res.writeHead(404).end();
        // Authentication.
        const authorization = req.headers.authorization ?? '';
        const challengeHeaders = {
          'WWW-Authenticate': schemes
            .map((s) => (s === 'basic' ? 'Basic realm="WSMAN"' : 'Negotiate'))
            .join(', '),
        };
        if (!ntlmAuthenticated.has(socket)) {
          const [scheme, token = ''] = authorization.split(' ');
          if (scheme === 'Basic' && schemes.includes('basic')) {
            const [u, ...p] = Buffer.from(token, 'base64').toString('utf8').split(':');
            if (u !== user || p.join(':') !== password) return void reply(401, '', challengeHeaders);
          } else if ((scheme === 'Negotiate' || scheme === 'NTLM') && schemes.includes('ntlm')) {
            if (isType1(token)) {
              const challenge = createChallenge();
              ntlmChallenges.set(socket, challenge);
              return void reply(401, '', { 'WWW-Authenticate': `${scheme} ${challenge.header}` });
            }
            const challenge = ntlmChallenges.get(socket);
            if (!challenge || !verifyType3(token, challenge, { user, password }).ok)
              return void reply(401, '', challengeHeaders);
            ntlmAuthenticated.add(socket);
          } else {
            return void reply(401, '', challengeHeaders);
          }
        }
        const request = Buffer.concat(chunks);
        if (request.length > maxEnvelopeBytes) {
          envelopeFaults++;
          return void reply(413, envelopeTooLarge(request.length, maxEnvelopeBytes));
        }
        void handle(request.toString('utf8')).then(
          ([status, body]) => reply(status, body),
          (error: Error) =>
            reply(500, fault('s:Receiver', 'w:InternalError', error.message, '2150858770', '')),
        );
      };
    },
  );
  server.on('connection', (socket: Socket) => {
    if (Date.now() < refuseUntil) return void socket.destroy();
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.keepAliveTimeout = 60_000;

  /** `winrm get winrm/config` as a WS-Man Get: how clients learn MaxEnvelopeSizekb. */
  function readConfig(messageId: string): [number, string] {
    if (options.configReadable === false)
      return [500, fault('s:Sender', 'w:AccessDenied', 'Access is denied.', '5', messageId)];
    const kb = maxEnvelopeBytes / 1024;
    return [
      200,
      respond(
        `${NS.x}/GetResponse`,
        messageId,
        `<cfg:Config xmlns:cfg="${NS.cfg}"><cfg:MaxEnvelopeSizekb>${kb}</cfg:MaxEnvelopeSizekb><cfg:MaxTimeoutms>60000</cfg:MaxTimeoutms><cfg:MaxBatchItems>32000</cfg:MaxBatchItems><cfg:MaxProviderRequests>4294967295</cfg:MaxProviderRequests><cfg:Winrs><cfg:AllowRemoteShellAccess>true</cfg:AllowRemoteShellAccess><cfg:MaxShellsPerUser>30</cfg:MaxShellsPerUser><cfg:MaxProcessesPerShell>25</cfg:MaxProcessesPerShell><cfg:MaxMemoryPerShellMB>1024</cfg:MaxMemoryPerShellMB></cfg:Winrs></cfg:Config>`,
      ),
    ];
  }

  async function handle(xml: string): Promise<[number, string]> {
    // Send's stdin content can be half a megabyte of base64: cut it out before the XML parser sees it.
    const { xml: slim, streams: streamTexts } = takeStreams(xml);
    const env = (parser.parse(slim) as { Envelope?: Record<string, unknown> }).Envelope ?? {};
    const header = (env.Header ?? {}) as Record<string, unknown>;
    const body = (env.Body ?? {}) as Record<string, unknown>;
    const action = text(header.Action);
    const messageId = text(header.MessageID);
    const selectors = ((header.SelectorSet as Record<string, unknown> | undefined)?.Selector ?? []) as Record<
      string,
      unknown
    >[];
    const shellId = text(selectors.find((s) => s['@Name'] === 'ShellId'));
    const resource = text(header.ResourceURI);
    if (resource === NS.cfg && action === `${NS.x}/Get`) return readConfig(messageId);
    if (resource && !resource.endsWith('/windows/shell/cmd'))
      return [
        500,
        fault(
          's:Sender',
          'w:DestinationUnreachable',
          `unknown resource ${resource}`,
          '2150858770',
          messageId,
        ),
      ];
    const ok = (responseAction: string, content: string): [number, string] => [
      200,
      respond(responseAction, messageId, content),
    ];
    switch (action) {
      case `${NS.x}/Create`: {
        await delay(costs.createShellMs);
        const id = randomUUID().toUpperCase();
        shells.set(id, new Map());
        shellHistory.set(id, []);
        return ok(
          `${NS.x}/CreateResponse`,
          `<x:ResourceCreated><a:Address>https://${host}/wsman</a:Address><a:ReferenceParameters><w:ResourceURI>http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd</w:ResourceURI><w:SelectorSet><w:Selector Name="ShellId">${id}</w:Selector></w:SelectorSet></a:ReferenceParameters></x:ResourceCreated><rsp:Shell><rsp:ShellId>${id}</rsp:ShellId></rsp:Shell>`,
        );
      }
      case `${NS.x}/Delete`: {
        for (const command of shells.get(shellId)?.values() ?? []) command.child.kill('SIGKILL');
        shellHistory.delete(shellId);
        if (!shells.delete(shellId)) return [500, invalidShell(shellId, messageId)];
        return ok(`${NS.x}/DeleteResponse`, '');
      }
      case `${SHELL_ACTION}/Command`: {
        const shell = shells.get(shellId);
        if (!shell) return [500, invalidShell(shellId, messageId)];
        const line = (body.CommandLine ?? {}) as Record<string, unknown>;
        const args = ((line.Arguments as unknown[] | undefined) ?? []).map(text);
        const commandLine = [text(line.Command), ...args].filter(Boolean).join(' ');
        commands.push(commandLine);
        shellHistory.get(shellId)?.push(commandLine);
        const id = randomUUID().toUpperCase();
        const child = startCommand(commandLine, behaviour);
        // A writer that died: its next Send gets a fault, as on Windows, rather than crashing the fake.
        child.stdin?.on('error', () => undefined);
        const starting =
          costs.cmdStartMs + (/^\s*powershell(\.exe)?\s/i.test(commandLine) ? costs.powershellStartMs : 0);
        const command: Command = { child, out: [], waiters: [], readyAt: Date.now() + starting };
        const wake = (): void => command.waiters.splice(0).forEach((w) => w());
        child.stdout?.on('data', (data: Buffer) => (command.out.push({ stream: 'stdout', data }), wake()));
        child.stderr?.on('data', (data: Buffer) => (command.out.push({ stream: 'stderr', data }), wake()));
        let reportedExitCode: number | undefined;
        child.on('message', (message: { exitCode?: number }) => (reportedExitCode = message.exitCode));
        child.once('close', (code, signal) => {
          command.exitCode = reportedExitCode ?? code ?? (signal ? 1 : 0);
          wake();
        });
        shell.set(id, command);
        return ok(
          `${SHELL_ACTION}/CommandResponse`,
          `<rsp:CommandResponse><rsp:CommandId>${id}</rsp:CommandId></rsp:CommandResponse>`,
        );
      }
      case `${SHELL_ACTION}/Receive`: {
        const desired = (body.Receive as Record<string, unknown> | undefined)?.DesiredStream as
          Record<string, unknown> | undefined;
        const commandId = text(desired?.['@CommandId']);
        const command = shells.get(shellId)?.get(commandId);
        if (!command) return [500, invalidShell(shellId, messageId)];
        const wait = Math.min(receiveCapMs, parseDuration(text(header.OperationTimeout)) ?? receiveCapMs);
        const deadline = Date.now() + wait;
        // A process still starting has nothing to say yet, whatever the fake's stand-in printed already.
        if (command.readyAt > Date.now()) await delay(Math.min(command.readyAt, deadline) - Date.now());
        const ready = Date.now() >= command.readyAt;
        if (!ready || (command.out.length === 0 && command.exitCode === undefined)) {
          if (ready)
            await new Promise<void>((resolve) => {
              const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
              command.waiters.push(() => (clearTimeout(timer), resolve()));
            });
          if (!ready || (command.out.length === 0 && command.exitCode === undefined))
            return [
              500,
              fault(
                's:Receiver',
                'w:TimedOut',
                'The WS-Management service cannot complete the operation within the time specified in OperationTimeout.',
                '2150858793',
                messageId,
              ),
            ];
        }
        // Up to ~100 KB of output per response (well inside the client's MaxEnvelopeSize).
        let budget = 100_000;
        const streams: string[] = [];
        while (command.out.length > 0 && budget > 0) {
          const next = command.out[0]!;
          const part = next.data.subarray(0, budget);
          if (part.length === next.data.length) command.out.shift();
          else next.data = next.data.subarray(part.length);
          budget -= part.length;
          streams.push(
            `<rsp:Stream Name="${next.stream}" CommandId="${commandId}">${part.toString('base64')}</rsp:Stream>`,
          );
        }
        const done = command.exitCode !== undefined && command.out.length === 0;
        if (done) command.child.emit(EXIT_REPORTED);
        const state = done
          ? `<rsp:Stream Name="stdout" CommandId="${commandId}" End="true"></rsp:Stream><rsp:Stream Name="stderr" CommandId="${commandId}" End="true"></rsp:Stream><rsp:CommandState CommandId="${commandId}" State="${NS.rsp}/CommandState/Done"><rsp:ExitCode>${(command.exitCode ?? 0) >>> 0}</rsp:ExitCode></rsp:CommandState>`
          : `<rsp:CommandState CommandId="${commandId}" State="${NS.rsp}/CommandState/Running"></rsp:CommandState>`;
        return ok(
          `${SHELL_ACTION}/ReceiveResponse`,
          `<rsp:ReceiveResponse>${streams.join('')}${state}</rsp:ReceiveResponse>`,
        );
      }
      case `${SHELL_ACTION}/Send`: {
        await delay(options.sendDelayMs ?? 0);
        const shell = shells.get(shellId);
        if (!shell) return [500, invalidShell(shellId, messageId)];
        const sent = ((body.Send as Record<string, unknown> | undefined)?.Stream ?? []) as Record<
          string,
          unknown
        >[];
        for (const [index, stream] of sent.entries()) {
          const command = shell.get(text(stream['@CommandId']));
          if (!command) return [500, invalidShell(shellId, messageId)];
          // Windows holds the Send while the process starts and its stdin pipe is full: flow control.
          if (command.readyAt > Date.now()) await delay(command.readyAt - Date.now());
          const stdin = command.child.stdin;
          const data = Buffer.from(streamTexts[index] ?? '', 'base64');
          if (
            command.exitCode !== undefined ||
            !stdin ||
            stdin.destroyed ||
            (data.length > 0 && !(await write(stdin, data)))
          )
            return [
              500,
              fault('s:Receiver', 'w:InternalError', 'The pipe has been ended.', '2147942509', messageId),
            ];
          if (text(stream['@End']) === 'true') stdin.end();
        }
        return ok(`${SHELL_ACTION}/SendResponse`, '<rsp:SendResponse/>');
      }
      case `${SHELL_ACTION}/Signal`: {
        const signalled = (body.Signal as Record<string, unknown> | undefined)?.['@CommandId'];
        const shell = shells.get(shellId);
        if (!shell) return [500, invalidShell(shellId, messageId)];
        const command = shell.get(text(signalled));
        if (command && command.exitCode === undefined) command.child.kill('SIGKILL');
        shell.delete(text(signalled));
        return ok(`${SHELL_ACTION}/SignalResponse`, '<rsp:SignalResponse/>');
      }
      default:
        return [
          500,
          fault(
            's:Sender',
            'a:ActionNotSupported',
            `The action ${action} is not supported.`,
            '2150858771',
            messageId,
          ),
        ];
    }
  }

  await new Promise<void>((resolve) =>
    options.socketPath
      ? server.listen(options.socketPath, resolve)
      : server.listen(options.port ?? 0, host, resolve),
  );
  const vm: FakeWindowsVm = {
    host,
    port: options.socketPath ? 0 : (server.address() as AddressInfo).port,
    user,
    password,
    certPem,
    certFile: join(dir, 'cert.pem'),
    fingerprint256: new (await import('node:crypto')).X509Certificate(certPem).fingerprint256,
    sandbox,
    commands,
    machineState: () => readMachineState(behaviour.sandbox),
    openShells: () => shells.size,
    openCommands: () => [...shells.values()].reduce((sum, shell) => sum + shell.size, 0),
    openShellIds: () => [...shells.keys()],
    shellCommands: (id) => [...(shellHistory.get(id) ?? [])],
    describeOpenShells: () =>
      [...shells.keys()]
        .map((id) => `shell ${id}: ${shellHistory.get(id)?.map(shorten).join(' | ') || 'no command'}`)
        .join('\n'),
    envelopeFaults: () => envelopeFaults,
    reboot: (ms) => {
      refuseUntil = Date.now() + ms;
      for (const socket of sockets) socket.destroy();
      for (const shell of shells.values()) for (const c of shell.values()) c.child.kill('SIGKILL');
      shells.clear();
      shellHistory.clear();
    },
    close: async () => {
      for (const shell of shells.values()) for (const c of shell.values()) c.child.kill('SIGKILL');
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return vm;
}

function respond(action: string, relatesTo: string, body: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?><s:Envelope xml:lang="en-US" xmlns:s="${NS.s}" xmlns:a="${NS.a}" xmlns:x="${NS.x}" xmlns:w="${NS.w}" xmlns:rsp="${NS.rsp}"><s:Header><a:Action>${action}</a:Action><a:MessageID>uuid:${randomUUID().toUpperCase()}</a:MessageID><a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To><a:RelatesTo>${relatesTo}</a:RelatesTo></s:Header><s:Body>${body}</s:Body></s:Envelope>`;
}

function fault(code: string, subcode: string, reason: string, wsmanCode: string, relatesTo: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?><s:Envelope xml:lang="en-US" xmlns:s="${NS.s}" xmlns:a="${NS.a}" xmlns:w="${NS.w}" xmlns:f="${NS.f}"><s:Header><a:Action>http://schemas.dmtf.org/wbem/wsman/1/wsman/fault</a:Action><a:MessageID>uuid:${randomUUID().toUpperCase()}</a:MessageID><a:RelatesTo>${relatesTo}</a:RelatesTo></s:Header><s:Body><s:Fault><s:Code><s:Value>${code}</s:Value><s:Subcode><s:Value>${subcode}</s:Value></s:Subcode></s:Code><s:Reason><s:Text xml:lang="en-US">${reason}</s:Text></s:Reason><s:Detail><f:WSManFault Code="${wsmanCode}" Machine="fake-windows-vm"><f:Message>${reason}</f:Message></f:WSManFault></s:Detail></s:Fault></s:Body></s:Envelope>`;
}

/** Windows' answer to a request over MaxEnvelopeSizekb: HTTP 413, carrying the fault its client reports. */
function envelopeTooLarge(bytes: number, limit: number): string {
  return fault(
    's:Sender',
    'w:EncodingLimit',
    `The WinRM client sent a request to the remote WS-Management service and was notified that the request size exceeded the configured MaxEnvelopeSize quota. (${bytes} bytes, MaxEnvelopeSizekb ${limit / 1024})`,
    '2150859025',
    '',
  );
}

function invalidShell(shellId: string, relatesTo: string): string {
  return fault(
    's:Sender',
    'w:InvalidSelectors',
    `The shell ${shellId || '(none)'} does not exist.`,
    '2150858843',
    relatesTo,
  );
}

const delay = (ms: number): Promise<void> =>
  ms > 0 ? new Promise((resolve) => setTimeout(resolve, ms)) : Promise.resolve();

/** Onto a process's stdin, resolved once the pipe took it (false if the process is gone). */
function write(stdin: NodeJS.WritableStream, data: Buffer): Promise<boolean> {
  return new Promise((resolve) => stdin.write(data, (error) => resolve(!error)));
}

/** The text of every rsp:Stream element, in order, and the envelope with those texts taken out. */
function takeStreams(xml: string): { xml: string; streams: string[] } {
  const streams: string[] = [];
  if (!xml.includes('Stream')) return { xml, streams };
  const slim = xml.replace(
    /(<(?:[\w.-]+:)?Stream\b[^>]*>)([^<]*)(<\/(?:[\w.-]+:)?Stream>)/g,
    (_, open: string, content: string, close: string) => (streams.push(content), `${open}${close}`),
  );
  return { xml: slim, streams };
}

/** A command line short enough for a message: its start and its end. */
const shorten = (line: string): string =>
  line.length > 160 ? `${line.slice(0, 60)}…${line.slice(-100)}` : line;

function text(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && '#text' in value)
    return String((value as Record<string, unknown>)['#text']);
  return '';
}

/** ISO-8601 durations as clients send them: PT20S, PT1M30S, PT0.5S, PT30M. */
function parseDuration(iso: string): number | undefined {
  const match = /^PT(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?$/.exec(iso);
  if (!match) return undefined;
  return (Number(match[1] ?? 0) * 3600 + Number(match[2] ?? 0) * 60 + Number(match[3] ?? 0)) * 1000;
}
