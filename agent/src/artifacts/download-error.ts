/**
 * How artifact downloads fail: one error class that says what happened, whether another attempt could
 * succeed, and what the user can do; plus the classification of HTTP statuses and network errors.
 */

/** What the user can do, by kind of failure. Flags are named so the hint works for render and build. */
export const HINTS = {
  notFound: 'Check the URL: the server has no file there.',
  denied:
    'Check the SAS token (expiry, permissions) or give the identity read access (Storage Blob Data Reader), or make the file readable.',
  refused: 'Check the URL; the server refuses this request.',
  serverFailing: 'The server is failing: try again later, or fetch from a mirror with --rewrite-uri.',
  busy: 'The server is overloaded or rate-limiting: try again later, fetch from a mirror with --rewrite-uri, or allow more time with --download-total-timeout.',
  slow: 'Check that the server is up and reachable from here, fetch from a mirror with --rewrite-uri, or allow more time with --download-timeout, --download-stall-timeout or --download-total-timeout.',
  network:
    'Check the host name and that this machine can reach the server (DNS, firewall, proxy), or fetch from a mirror with --rewrite-uri.',
  tls: 'The server is not trusted over TLS here: fix its certificate, add its CA with NODE_EXTRA_CA_CERTS, or fetch from a mirror with --rewrite-uri.',
  redirect: "Point the template at the file's final URL.",
} as const;

export class DownloadError extends Error {
  constructor(
    message: string,
    /** Whether another attempt could succeed (network trouble, 5xx, timeouts), driving the retry loop. */
    readonly retryable: boolean,
    /** What the user can do about it, as a sentence. */
    readonly hint = '',
    /** How long the server asked us to wait before the next attempt (Retry-After). */
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'DownloadError';
  }
}

/** 408 and 429 say "later", 5xx "the server failed": those may pass. Every other status will not change. */
export function statusError(
  status: number,
  statusText: string,
  detail: string,
  retryAfter: string | undefined,
): DownloadError {
  const message = `the server answered HTTP ${status}${statusText ? ` ${statusText}` : ''}${detail}`;
  if (status === 408 || status === 429)
    return new DownloadError(message, true, HINTS.busy, parseRetryAfter(retryAfter));
  if (status >= 500)
    return new DownloadError(message, true, HINTS.serverFailing, parseRetryAfter(retryAfter));
  if (status === 404 || status === 410) return new DownloadError(message, false, HINTS.notFound);
  if (status === 401 || status === 403) return new DownloadError(message, false, HINTS.denied);
  if (status >= 300 && status < 400)
    return new DownloadError(`${message} without a Location`, false, HINTS.redirect);
  return new DownloadError(message, false, HINTS.refused);
}

/** Retry-After is either delta-seconds or an HTTP date (RFC 9110 §10.2.3). */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** TLS failures that no retry fixes: the certificate or the protocol is wrong, not the network. */
const PERMANENT_TLS = new Set([
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'ERR_SSL_WRONG_VERSION_NUMBER',
]);

const NETWORK_ERRORS: Record<string, string> = {
  ENOTFOUND: 'the host name does not resolve (DNS)',
  EAI_AGAIN: 'DNS lookup failed temporarily',
  ECONNREFUSED: 'refused the connection',
  ECONNRESET: 'reset the connection',
  EPIPE: 'closed the connection',
  ETIMEDOUT: 'did not answer (the connection timed out)',
  EHOSTUNREACH: 'is unreachable (no route to the host)',
  ENETUNREACH: 'is unreachable (no route to the network)',
  CERT_HAS_EXPIRED: 'has an expired TLS certificate',
  CERT_NOT_YET_VALID: 'has a TLS certificate that is not valid yet',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'uses a self-signed TLS certificate',
  SELF_SIGNED_CERT_IN_CHAIN: 'has a self-signed certificate in its TLS chain',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'has a TLS certificate that cannot be verified',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'has a TLS certificate from an unknown CA',
  ERR_TLS_CERT_ALTNAME_INVALID: 'has a TLS certificate for another name',
  ERR_SSL_WRONG_VERSION_NUMBER: 'does not speak TLS on this port (is the URL http://?)',
};

/** A socket or TLS error from talking to `peer` (host:port), classified and worded for the user. */
export function networkError(error: unknown, peer: string): DownloadError {
  const code = (error as { code?: string }).code ?? '';
  if (code.startsWith('HPE_'))
    return new DownloadError(
      `${peer} answered with something that is not HTTP (${code})`,
      false,
      HINTS.refused,
    );
  if (code === 'EPROTO') {
    // OpenSSL's reason, e.g. "wrong version number" (not TLS at all) or "sslv3 alert handshake failure"
    // (no common protocol or cipher suite): neither changes on a retry.
    const reason = /SSL routines:[^:]*:([^:]+)/.exec((error as Error).message ?? '')?.[1] ?? 'protocol error';
    const text =
      reason === 'wrong version number'
        ? NETWORK_ERRORS.ERR_SSL_WRONG_VERSION_NUMBER
        : `failed the TLS handshake (${reason})`;
    return new DownloadError(`${peer} ${text} (EPROTO)`, false, HINTS.tls);
  }
  const known = Object.hasOwn(NETWORK_ERRORS, code) ? NETWORK_ERRORS[code] : undefined;
  const text = known ?? (error instanceof Error ? error.message : String(error));
  const message = `${code === 'ENOTFOUND' || code === 'EAI_AGAIN' ? `${peer}: ` : `${peer} `}${text}${code ? ` (${code})` : ''}`;
  if (PERMANENT_TLS.has(code)) return new DownloadError(message, false, HINTS.tls);
  return new DownloadError(message, true, HINTS.network);
}

/** Durations as people say them: 300 ms, 2.5 s, 90 s, 5 min, 10 min 48 s. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 120_000) return `${Number((ms / 1000).toFixed(1))} s`;
  const total = Math.round(ms / 1000);
  const minutes = Math.floor(total / 60);
  return total % 60 === 0 ? `${minutes} min` : `${minutes} min ${total % 60} s`;
}
