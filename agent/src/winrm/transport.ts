/**
 * WinRM's transport: SOAP over HTTPS (5986) on one keep-alive connection, with explicit certificate
 * handling (system CAs, a pinned CA, a pinned certificate fingerprint, or insecure for self-signed build
 * VMs) and Basic or NTLM authentication. NTLM's three legs must share one TCP connection, so the agent
 * holds a single socket. Failures are classified (refused, timeout, unreachable, TLS, rejected login, not
 * WinRM) and worded by hop, like the SSH probe's.
 */
import { X509Certificate } from 'node:crypto';
import { Agent, request, type RequestOptions } from 'node:https';
import { isIP } from 'node:net';
import { checkServerIdentity, type PeerCertificate, type TLSSocket } from 'node:tls';
import { createRequire } from 'node:module';
import { hostname } from 'node:os';
import type { Secret } from '../secret.js';

export type TlsPolicy =
  | { readonly kind: 'system' }
  /** Trust only this CA (PEM), e.g. the build VM's self-signed certificate itself. */
  | { readonly kind: 'ca'; readonly ca: string }
  /** Accept exactly the certificate with this SHA-256 fingerprint (hex, colons optional). */
  | { readonly kind: 'fingerprint'; readonly sha256: string }
  /** Accept any certificate (AIB's build VMs use self-signed ones). Explicit, never a default. */
  | { readonly kind: 'insecure' };

export type WinRmAuth =
  | { readonly kind: 'basic'; readonly user: string; readonly password: Secret }
  | { readonly kind: 'ntlm'; readonly user: string; readonly password: Secret; readonly domain?: string };

export interface WinRmTarget {
  /** Where to connect (the relay, or the VM itself). */
  readonly host: string;
  readonly port: number;
  /** Name the certificate is checked against and sent as SNI (the VM's name when going through a relay). */
  readonly servername?: string;
  readonly tls: TlsPolicy;
  readonly auth: WinRmAuth;
  /** How failures name this hop, e.g. "build VM 10.1.0.4:5986". */
  readonly label?: string;
}

export type WinRmFailureKind =
  'refused' | 'timeout' | 'unreachable' | 'tls' | 'auth-rejected' | 'not-winrm' | 'protocol';

export class WinRmError extends Error {
  constructor(
    readonly kind: WinRmFailureKind,
    message: string,
  ) {
    super(message);
    this.name = 'WinRmError';
  }
}

export interface HttpReply {
  readonly status: number;
  readonly body: string;
  readonly contentType: string;
}

export class WinRmTransport {
  readonly endpoint: string;
  private readonly agent: Agent;
  private readonly where: string;
  private ntlmReady = false;

  /** The name the VM's certificate must carry. */
  private readonly certificateName: string;

  constructor(private readonly target: WinRmTarget) {
    const name = target.servername ?? target.host;
    this.certificateName = name;
    this.endpoint = `https://${name.includes(':') ? `[${name}]` : name}:${target.port}/wsman`;
    this.where = target.label ?? `${target.host}:${target.port}`;
    // One socket: NTLM authenticates the connection, not the request.
    this.agent = new Agent({ keepAlive: true, maxSockets: 1, keepAliveMsecs: 30_000 });
  }

  /** POSTs one SOAP message; resolves with any HTTP reply except 401 (which becomes an auth-rejected error). */
  async post(xml: string, timeoutMs: number, signal?: AbortSignal): Promise<HttpReply> {
    const { auth } = this.target;
    if (auth.kind === 'basic') {
      const token = Buffer.from(`${auth.user}:${auth.password.reveal()}`).toString('base64');
      return this.expectAuthorized(await this.send(xml, `Basic ${token}`, timeoutMs, signal));
    }
    if (!this.ntlmReady) await this.ntlmHandshake(timeoutMs, signal);
    let reply = await this.send(xml, undefined, timeoutMs, signal);
    if (reply.status === 401) {
      // The connection was replaced (keep-alive expired): authenticate the new one.
      this.ntlmReady = false;
      await this.ntlmHandshake(timeoutMs, signal);
      reply = await this.send(xml, undefined, timeoutMs, signal);
    }
    return this.expectAuthorized(reply);
  }

  close(): void {
    this.agent.destroy();
  }

  private async ntlmHandshake(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    const auth = this.target.auth as Extract<WinRmAuth, { kind: 'ntlm' }>;
    // CommonJS without type declarations; loaded only when NTLM is used.
    const ntlm = createRequire(import.meta.url)('@ewsjs/ntlm-client') as NtlmMessages;
    const [domain, user] = splitDomain(auth.user, auth.domain);
    const workstation = hostname().toUpperCase().slice(0, 15);
    const type1 = ntlm.createType1Message(workstation, domain).replace(/^NTLM /, '');
    const challenge = await this.send('', `Negotiate ${type1}`, timeoutMs, signal);
    const header = challenge.wwwAuthenticate.match(/(?:Negotiate|NTLM) ([A-Za-z0-9+/=]+)/)?.[1];
    if (challenge.status !== 401 || !header) {
      throw new WinRmError(
        challenge.status === 401 ? 'auth-rejected' : 'protocol',
        challenge.status === 401
          ? `${this.where} does not offer NTLM (WWW-Authenticate: ${challenge.wwwAuthenticate || 'none'}); use Basic or enable Negotiate on the VM`
          : `${this.where} answered the NTLM negotiation with HTTP ${challenge.status} instead of a challenge`,
      );
    }
    const type2 = ntlm.decodeType2Message(header);
    const type3 = ntlm
      .createType3Message(type2, user, auth.password.reveal(), workstation, domain || type2.targetName)
      .replace(/^NTLM /, '');
    this.pendingAuthorization = `Negotiate ${type3}`;
    this.ntlmReady = true;
  }

  /** The Type 3 message rides on the next real request (with its body), as Windows expects. */
  private pendingAuthorization: string | undefined;

  private expectAuthorized(reply: HttpReply & { wwwAuthenticate: string }): HttpReply {
    if (reply.status === 401) {
      throw new WinRmError(
        'auth-rejected',
        `${this.where} rejected the login for "${authUser(this.target.auth)}" (${this.target.auth.kind === 'basic' ? 'Basic' : 'NTLM'}): check the user and password, and that the VM allows this authentication (WinRM's Basic is off by default).`,
      );
    }
    return reply;
  }

  private send(
    body: string,
    authorization: string | undefined,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<HttpReply & { wwwAuthenticate: string }> {
    const auth = authorization ?? this.pendingAuthorization;
    this.pendingAuthorization = undefined;
    const options: RequestOptions = {
      host: this.target.host,
      port: this.target.port,
      path: '/wsman',
      method: 'POST',
      agent: this.agent,
      // SNI carries host names only (an IP there is deprecated, DEP0123); the identity check still uses the name.
      ...(isIP(this.certificateName) ? {} : { servername: this.certificateName }),
      headers: {
        'Content-Type': 'application/soap+xml;charset=UTF-8',
        'Content-Length': Buffer.byteLength(body),
        'User-Agent': 'isobuild WinRM client',
        ...(auth ? { Authorization: auth } : {}),
      },
      ...tlsOptions(this.target.tls, this.certificateName),
    };
    return new Promise((resolve, reject) => {
      signal?.throwIfAborted();
      let settled = false;
      const fail = (error: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        req.destroy();
        reject(error);
      };
      const req = request(options, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', (error) => fail(this.classify(error)));
        res.on('end', () => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          resolve({
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks).toString('utf8'),
            contentType: String(res.headers['content-type'] ?? ''),
            wwwAuthenticate: String(res.headers['www-authenticate'] ?? ''),
          });
        });
      });
      if (this.target.tls.kind === 'fingerprint') {
        const expected = normalizeFingerprint(this.target.tls.sha256);
        req.on('socket', (socket) => {
          const check = (): void => {
            const cert = (socket as TLSSocket).getPeerX509Certificate?.();
            const actual = cert ? normalizeFingerprint(new X509Certificate(cert.raw).fingerprint256) : '';
            if (actual !== expected)
              fail(
                new WinRmError(
                  'tls',
                  `${this.where} presented a certificate with SHA-256 fingerprint ${actual || 'none'}, not the pinned ${expected}`,
                ),
              );
          };
          if ((socket as TLSSocket).encrypted && (socket as TLSSocket).getPeerCertificate?.()?.raw) check();
          else socket.once('secureConnect', check);
        });
      }
      const timer = setTimeout(
        () => fail(new WinRmError('timeout', `${this.where} did not answer within ${timeoutMs / 1000} s`)),
        timeoutMs,
      );
      const onAbort = (): void =>
        fail(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
      signal?.addEventListener('abort', onAbort, { once: true });
      req.on('error', (error) => fail(this.classify(error)));
      req.end(body);
    });
  }

  private classify(error: NodeJS.ErrnoException): Error {
    if (error instanceof WinRmError) return error;
    const code = error.code ?? '';
    if (code === 'ECONNREFUSED') return new WinRmError('refused', `${this.where} refused the connection`);
    if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH')
      return new WinRmError('unreachable', `${this.where} is unreachable (${code})`);
    if (code === 'ETIMEDOUT') return new WinRmError('timeout', `${this.where} timed out`);
    if (
      /^(ERR_TLS|ERR_SSL|CERT_|DEPTH_ZERO|SELF_SIGNED|UNABLE_TO|ERR_OSSL|HOSTNAME_MISMATCH)/.test(code) ||
      /SSL|TLS|certificate/i.test(error.message)
    ) {
      return new WinRmError(
        'tls',
        `TLS with ${this.where} failed: ${error.message} (${code || 'no code'}). Trust its certificate (--winrm-ca or --winrm-cert-sha256), or use --winrm-insecure for a self-signed build VM`,
      );
    }
    if (code === 'ECONNRESET' || code === 'EPIPE')
      return new WinRmError('protocol', `${this.where} closed the connection (${code})`);
    return new WinRmError('protocol', `${this.where}: ${error.message}`);
  }
}

interface NtlmMessages {
  createType1Message(workstation: string, target: string): string;
  decodeType2Message(header: string): { targetName: string };
  createType3Message(
    type2: unknown,
    user: string,
    password: string,
    workstation: string,
    target: string,
  ): string;
}

function tlsOptions(
  policy: TlsPolicy,
  certificateName: string,
): Pick<RequestOptions, 'ca' | 'rejectUnauthorized' | 'checkServerIdentity'> {
  // The connection goes to a local relay: the certificate must name the VM, not 127.0.0.1.
  const identity = (_host: string, cert: PeerCertificate) => checkServerIdentity(certificateName, cert);
  switch (policy.kind) {
    case 'system':
      return { checkServerIdentity: identity };
    case 'ca':
      return { ca: policy.ca, checkServerIdentity: identity };
    case 'fingerprint':
    case 'insecure':
      // The fingerprint is checked on connect instead (see send()).
      return { rejectUnauthorized: false };
  }
}

function splitDomain(user: string, domain?: string): [string, string] {
  if (domain !== undefined) return [domain, user];
  const backslash = user.indexOf('\\');
  if (backslash > 0) return [user.slice(0, backslash), user.slice(backslash + 1)];
  const at = user.indexOf('@');
  if (at > 0) return [user.slice(at + 1), user.slice(0, at)];
  return ['', user];
}

function authUser(auth: WinRmAuth): string {
  return auth.user;
}

export function normalizeFingerprint(text: string): string {
  return text.replace(/[^0-9a-f]/gi, '').toUpperCase();
}
