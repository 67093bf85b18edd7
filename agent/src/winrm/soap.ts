/**
 * WS-Management remote-shell messages (MS-WSMV): the envelopes for Create, Command, Receive, Signal and
 * Delete, and the parsing of their responses and faults. Responses are parsed namespace-blind (prefixes
 * stripped), so any server's prefixes work. Nothing here does I/O.
 */
import { randomUUID } from 'node:crypto';
import { XMLParser } from 'fast-xml-parser';

export const RESOURCE_CMD = 'http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd';
const SHELL = 'http://schemas.microsoft.com/wbem/wsman/1/windows/shell';
const TRANSFER = 'http://schemas.xmlsoap.org/ws/2004/09/transfer';
export const ACTIONS = {
  create: `${TRANSFER}/Create`,
  delete: `${TRANSFER}/Delete`,
  command: `${SHELL}/Command`,
  receive: `${SHELL}/Receive`,
  signal: `${SHELL}/Signal`,
  send: `${SHELL}/Send`,
  get: `${TRANSFER}/Get`,
} as const;
/** WinRM's own configuration (`winrm get winrm/config`), readable by administrators with a WS-Man Get. */
export const RESOURCE_CONFIG = 'http://schemas.microsoft.com/wbem/wsman/1/config';
export const SIGNAL_TERMINATE = `${SHELL}/signal/terminate`;
/** ERROR_WSMAN_OPERATION_TIMEDOUT: "no output yet, ask again", not an error. */
export const TIMED_OUT_CODE = '2150858793';
/**
 * ERROR_WSMAN_HTTP_REQUEST_TOO_LARGE_STATUS: the request was larger than the service's MaxEnvelopeSizekb.
 * Windows answers such a request with HTTP 413; this is the code its own client reports for it.
 */
export const ENVELOPE_TOO_LARGE_CODE = '2150859025';
/** The largest response we accept, as every reference client sends it. */
const MAX_ENVELOPE_SIZE = 153600;

export interface HeaderOptions {
  readonly endpoint: string;
  readonly action: string;
  /** The resource addressed; the cmd shell unless said otherwise. */
  readonly resourceUri?: string;
  readonly shellId?: string;
  /** ISO-8601 duration, e.g. PT20S: how long the server may hold a Receive before a TimedOut fault. */
  readonly operationTimeout: string;
  readonly options?: Readonly<Record<string, string>>;
}

export function envelope(header: HeaderOptions, body: string): { xml: string; messageId: string } {
  const messageId = `uuid:${randomUUID().toUpperCase()}`;
  const selector = header.shellId
    ? `<w:SelectorSet><w:Selector Name="ShellId">${escapeXml(header.shellId)}</w:Selector></w:SelectorSet>`
    : '';
  const options = header.options
    ? `<w:OptionSet>${Object.entries(header.options)
        .map(([name, value]) => `<w:Option Name="${escapeXml(name)}">${escapeXml(value)}</w:Option>`)
        .join('')}</w:OptionSet>`
    : '';
  const xml =
    `<?xml version="1.0" encoding="utf-8"?>` +
    `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd" xmlns:rsp="${SHELL}">` +
    `<s:Header>` +
    `<a:To>${escapeXml(header.endpoint)}</a:To>` +
    `<a:ReplyTo><a:Address s:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo>` +
    `<w:ResourceURI s:mustUnderstand="true">${header.resourceUri ?? RESOURCE_CMD}</w:ResourceURI>` +
    `<a:Action s:mustUnderstand="true">${header.action}</a:Action>` +
    `<a:MessageID>${messageId}</a:MessageID>` +
    `<w:MaxEnvelopeSize s:mustUnderstand="true">${MAX_ENVELOPE_SIZE}</w:MaxEnvelopeSize>` +
    `<w:Locale xml:lang="en-US" s:mustUnderstand="false"/>` +
    `<p:DataLocale xml:lang="en-US" s:mustUnderstand="false"/>` +
    `<w:OperationTimeout>${header.operationTimeout}</w:OperationTimeout>` +
    selector +
    options +
    `</s:Header><s:Body>${body}</s:Body></s:Envelope>`;
  return { xml, messageId };
}

export const bodies = {
  createShell: (): string =>
    `<rsp:Shell><rsp:InputStreams>stdin</rsp:InputStreams><rsp:OutputStreams>stdout stderr</rsp:OutputStreams></rsp:Shell>`,
  command: (command: string): string =>
    `<rsp:CommandLine><rsp:Command>${escapeXml(command)}</rsp:Command></rsp:CommandLine>`,
  receive: (commandId: string): string =>
    `<rsp:Receive><rsp:DesiredStream CommandId="${escapeXml(commandId)}">stdout stderr</rsp:DesiredStream></rsp:Receive>`,
  /** Input for a command's stdin, base64 already; `end` closes its stdin after this piece. */
  send: (commandId: string, base64: string, end: boolean): string =>
    `<rsp:Send><rsp:Stream Name="stdin" CommandId="${escapeXml(commandId)}"${end ? ' End="true"' : ''}>${base64}</rsp:Stream></rsp:Send>`,
  signal: (commandId: string): string =>
    `<rsp:Signal CommandId="${escapeXml(commandId)}"><rsp:Code>${SIGNAL_TERMINATE}</rsp:Code></rsp:Signal>`,
  empty: (): string => '',
};

const parser = new XMLParser({
  removeNSPrefix: true,
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  isArray: (name) => name === 'Stream' || name === 'Selector',
});

type Node = Record<string, unknown>;

export interface ParsedResponse {
  readonly action?: string;
  readonly relatesTo?: string;
  readonly body: Node;
}

export function parseResponse(xml: string): ParsedResponse {
  const doc = parser.parse(xml) as Node;
  const env = (doc.Envelope ?? {}) as Node;
  const header = (env.Header ?? {}) as Node;
  return {
    ...(typeof header.Action === 'string' ? { action: text(header.Action) } : {}),
    ...(header.RelatesTo !== undefined ? { relatesTo: text(header.RelatesTo) } : {}),
    body: (env.Body ?? {}) as Node,
  };
}

export interface Fault {
  readonly code?: string;
  readonly subcode?: string;
  readonly reason: string;
  readonly wsmanCode?: string;
}

export function parseFault(xml: string): Fault | undefined {
  let body: Node;
  try {
    body = parseResponse(xml).body;
  } catch {
    return undefined;
  }
  const fault = body.Fault as Node | undefined;
  if (!fault) return undefined;
  const code = fault.Code as Node | undefined;
  const detail = (fault.Detail ?? {}) as Node;
  const wsman = detail.WSManFault as Node | undefined;
  const reasonNode = fault.Reason as Node | undefined;
  const message = wsman?.Message;
  return {
    ...(code?.Value !== undefined ? { code: text(code.Value) } : {}),
    ...((code?.Subcode as Node | undefined)?.Value !== undefined
      ? { subcode: text((code?.Subcode as Node).Value) }
      : {}),
    reason: text(message ?? reasonNode?.Text ?? 'unknown fault').trim(),
    ...(wsman?.['@Code'] !== undefined ? { wsmanCode: text(wsman['@Code']) } : {}),
  };
}

export function isTimedOut(fault: Fault): boolean {
  return fault.wsmanCode === TIMED_OUT_CODE || /TimedOut$/.test(fault.subcode ?? '');
}

/** A fault saying the request envelope was over the server's limit (servers other than Windows' HTTP 413). */
export function isEnvelopeTooLarge(fault: Fault): boolean {
  return fault.wsmanCode === ENVELOPE_TOO_LARGE_CODE || /EncodingLimit$/.test(fault.subcode ?? '');
}

/** MaxEnvelopeSizekb from the body of a GetResponse of winrm/config, in bytes. */
export function maxEnvelopeBytesOf(body: Node): number | undefined {
  const config = body.Config as Node | undefined;
  const kb = Number(text(config?.MaxEnvelopeSizekb));
  return Number.isInteger(kb) && kb > 0 ? kb * 1024 : undefined;
}

/** The ShellId of a CreateResponse (from the selector, or rsp:Shell/rsp:ShellId on newer servers). */
export function shellIdOf(body: Node): string | undefined {
  const created = body.ResourceCreated as Node | undefined;
  const parameters = created?.ReferenceParameters as Node | undefined;
  const selectors = (parameters?.SelectorSet as Node | undefined)?.Selector as Node[] | undefined;
  const selector = selectors?.find((s) => s['@Name'] === 'ShellId');
  if (selector) return text(selector);
  const shell = body.Shell as Node | undefined;
  return shell?.ShellId !== undefined ? text(shell.ShellId) : undefined;
}

export function commandIdOf(body: Node): string | undefined {
  const response = body.CommandResponse as Node | undefined;
  return response?.CommandId !== undefined ? text(response.CommandId) : undefined;
}

export interface ReceiveChunk {
  readonly stdout: Buffer[];
  readonly stderr: Buffer[];
  readonly done: boolean;
  readonly exitCode?: number;
}

export function receiveChunkOf(body: Node): ReceiveChunk {
  const response = (body.ReceiveResponse ?? {}) as Node;
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  for (const stream of (response.Stream as Node[] | undefined) ?? []) {
    const content = typeof stream === 'string' ? stream : text(stream['#text'] ?? '');
    if (!content) continue;
    const target = (typeof stream === 'string' ? 'stdout' : stream['@Name']) === 'stderr' ? stderr : stdout;
    target.push(Buffer.from(content, 'base64'));
  }
  const state = response.CommandState as Node | undefined;
  const done = typeof state?.['@State'] === 'string' && state['@State'].endsWith('CommandState/Done');
  const exit = state?.ExitCode;
  return {
    stdout,
    stderr,
    done,
    ...(done && exit !== undefined ? { exitCode: Number(text(exit)) } : {}),
  };
}

function text(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return String(value);
  if (value && typeof value === 'object' && '#text' in value) return String((value as Node)['#text']);
  return '';
}

export function escapeXml(value: string): string {
  return value
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}
