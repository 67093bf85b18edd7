/** The source allowlist: which client networks may connect (models AIB's NSG rule for the load balancer). */
import { isIP } from 'node:net';
import { parseDecimal } from './values.js';

export interface Cidr {
  readonly text: string;
  readonly family: 4 | 6;
  readonly network: bigint;
  readonly prefix: number;
}

/** `'any'` admits every source; a list admits only sources inside one of its networks (an empty one, nobody). */
export type Allowlist = 'any' | readonly Cidr[];

/** A network such as `10.0.0.0/16`, `168.63.129.16` (one address) or `fd00::/64`, or why `text` is not one. */
export function parseCidr(text: string): Cidr | { readonly problem: string } {
  const parts = text.split('/');
  const [address = '', prefixText] = parts;
  const family = address.includes('%') ? 0 : isIP(address);
  if (parts.length > 2 || (family !== 4 && family !== 6))
    return { problem: 'is not an IPv4 or IPv6 network such as 10.0.0.0/16 or fd00::/64' };
  const bits = family === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? bits : parseDecimal(prefixText);
  if (prefix === undefined || prefix > bits)
    return { problem: `has a prefix length that is not a decimal number from 0 to ${bits}` };
  const value = toBigInt(address, family);
  const network = mask(value, prefix, bits);
  if (network !== value)
    // 10.1.0.0/8 is most often a mistyped /16: say so rather than silently widen it to 10.0.0.0/8.
    return {
      problem: `has host bits set: the network with that prefix is ${fromBigInt(network, family)}/${prefix}`,
    };
  return { text, family, network, prefix };
}

/** True when `address` (as reported by a socket) is inside the allowlist. */
export function isAllowedSource(address: string | undefined, allow: Allowlist): boolean {
  if (allow === 'any') return true;
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
  // An embedded IPv4 tail (::ffff:10.0.0.1) is two 16-bit groups.
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(address)?.[1];
  const hex = dotted
    ? address.slice(0, -dotted.length) +
      (toBigInt(dotted, 4) >> 16n).toString(16) +
      ':' +
      (toBigInt(dotted, 4) & 0xffffn).toString(16)
    : address;
  const [head, tail] = hex.includes('::') ? hex.split('::') : [hex, undefined];
  const headParts = head ? head.split(':') : [];
  const tailParts = tail ? tail.split(':') : [];
  const missing = 8 - headParts.length - tailParts.length;
  const parts = [...headParts, ...Array<string>(tail === undefined ? 0 : missing).fill('0'), ...tailParts];
  return parts.reduce((acc, part) => (acc << 16n) | BigInt(parseInt(part || '0', 16)), 0n);
}

function fromBigInt(value: bigint, family: 4 | 6): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((shift) => String((value >> shift) & 0xffn)).join('.');
  const groups = Array.from({ length: 8 }, (_, i) =>
    ((value >> BigInt(112 - 16 * i)) & 0xffffn).toString(16),
  );
  return groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::');
}
