/** The source allowlist: which client networks may connect (models AIB's NSG rule for the load balancer). */
import { isIP } from 'node:net';

export interface Cidr {
  readonly text: string;
  readonly family: 4 | 6;
  readonly network: bigint;
  readonly prefix: number;
}

export function parseCidr(text: string): Cidr | undefined {
  const [address, prefixText] = text.includes('/') ? text.split('/') : [text, undefined];
  const family = isIP(address ?? '');
  if (family !== 4 && family !== 6) return undefined;
  const bits = family === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? bits : Number(prefixText);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > bits) return undefined;
  return { text, family, network: mask(toBigInt(address ?? '', family), prefix, bits), prefix };
}

/** True when `address` (as reported by a socket) is inside one of the allowed networks; an empty list allows all. */
export function isAllowedSource(address: string | undefined, allow: readonly Cidr[]): boolean {
  if (allow.length === 0) return true;
  if (!address) return false;
  const plain = address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
  const family = isIP(plain);
  if (family !== 4 && family !== 6) return false;
  const value = toBigInt(plain, family);
  const bits = family === 4 ? 32 : 128;
  return allow.some((cidr) => cidr.family === family && mask(value, cidr.prefix, bits) === cidr.network);
}

function mask(value: bigint, prefix: number, bits: number): bigint {
  if (prefix === 0) return 0n;
  const ones = (1n << BigInt(bits)) - 1n;
  return value & (ones ^ ((1n << BigInt(bits - prefix)) - 1n));
}

function toBigInt(address: string, family: 4 | 6): bigint {
  if (family === 4) return address.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
  const [head, tail] = address.includes('::') ? address.split('::') : [address, undefined];
  const headParts = head ? head.split(':') : [];
  const tailParts = tail ? tail.split(':') : [];
  const missing = 8 - headParts.length - tailParts.length;
  const parts = [...headParts, ...Array<string>(tail === undefined ? 0 : missing).fill('0'), ...tailParts];
  return parts.reduce((acc, part) => (acc << 16n) | BigInt(parseInt(part || '0', 16)), 0n);
}
