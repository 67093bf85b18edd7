/**
 * Strict forms of isobuild-proxy's option values. Flags and PROXY_* variables both go through these, so
 * `0x10`, `1e3`, ` 22`, `022` or `10.0.0.256` are refused instead of silently meaning something else.
 */
import { isIP } from 'node:net';

/** Plain decimal digits, no sign, no leading zeros (022 could be read as octal), no exponent, no spaces. */
const DECIMAL = /^(0|[1-9][0-9]*)$/;

/** The whole number `text` spells in decimal, or undefined when it is any other form. */
export function parseDecimal(text: string): number | undefined {
  if (!DECIMAL.test(text)) return undefined;
  const value = Number(text);
  return Number.isSafeInteger(value) ? value : undefined;
}

/** RFC 1123 labels: letters, digits and hyphens, 1–63 characters, no hyphen at either end. */
const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;

/**
 * True for an RFC 1123 host name such as `testvm` or `vm-1.internal.example`. The last label may not be all
 * digits: `10.0.0.256` is a mistyped address, not a name.
 */
export function isHostName(text: string): boolean {
  const name = text.endsWith('.') ? text.slice(0, -1) : text;
  if (name.length === 0 || name.length > 253) return false;
  const labels = name.split('.');
  return labels.every((label) => LABEL.test(label)) && !/^[0-9]+$/.test(labels[labels.length - 1] ?? '');
}

/** True for an IPv4 or IPv6 address (an IPv6 zone such as `fe80::1%eth0` included). */
export function isAddress(text: string): boolean {
  return isIP(text) !== 0;
}

/** `host:port` as a message shows it: IPv6 addresses in brackets. */
export function formatEndpoint(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}
