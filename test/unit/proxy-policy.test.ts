import { describe, expect, it } from 'vitest';
import { isAllowedSource, parseCidr, type Allowlist, type Cidr } from '../../proxy/src/policy.js';

function cidr(text: string): Cidr {
  const parsed = parseCidr(text);
  if ('problem' in parsed) throw new Error(`${text} ${parsed.problem}`);
  return parsed;
}

describe('isAllowedSource', () => {
  it.each([
    ['10.1.2.3', ['10.0.0.0/8'], true],
    ['11.1.2.3', ['10.0.0.0/8'], false],
    ['::ffff:10.1.2.3', ['10.0.0.0/8'], true],
    ['168.63.129.16', ['168.63.129.16/32'], true],
    ['168.63.129.17', ['168.63.129.16'], false],
    ['fd00::5', ['fd00::/64'], true],
    ['fd01::5', ['fd00::/64'], false],
    ['10.1.2.3', ['fd00::/8'], false],
    ['::ffff:10.1.2.3', ['::ffff:10.0.0.0/104'], false], // the socket's mapped form is compared as IPv4
    ['10.1.2.3', ['0.0.0.0/0'], true],
    [undefined, ['10.0.0.0/8'], false],
    ['127.0.0.1', [], false],
  ])('%s with %j → %s', (address, allow, expected) => {
    expect(isAllowedSource(address, allow.map(cidr))).toBe(expected);
  });

  it.each(['127.0.0.1', 'fd00::1', undefined])('admits %s when any source is allowed', (address) => {
    const any: Allowlist = 'any';

    expect(isAllowedSource(address, any)).toBe(true);
  });
});

describe('parseCidr', () => {
  it.each([
    ['10.0.0.0/33', 'prefix length'],
    ['10.0.0.0/', 'prefix length'],
    ['10.0.0.0/08', 'prefix length'],
    ['10.0.0.0/ 8', 'prefix length'],
    ['10.0.0.0/1e1', 'prefix length'],
    ['::1/129', 'prefix length'],
    ['example.com/8', 'not an IPv4 or IPv6 network'],
    ['10.0.0/8', 'not an IPv4 or IPv6 network'],
    ['10.0.0.0/8/8', 'not an IPv4 or IPv6 network'],
    ['fe80::1%eth0', 'not an IPv4 or IPv6 network'],
    ['', 'not an IPv4 or IPv6 network'],
    ['10.0.0.1/24', 'host bits set: the network with that prefix is 10.0.0.0/24'],
    ['fd00::1/16', 'host bits set: the network with that prefix is fd00::/16'],
  ])('rejects %j: %s', (text, problem) => {
    expect(parseCidr(text)).toEqual({ problem: expect.stringContaining(problem) });
  });

  it.each([
    ['10.0.0.0/8', 4, 8],
    ['168.63.129.16', 4, 32],
    ['0.0.0.0/0', 4, 0],
    ['fd00::/64', 6, 64],
    ['::ffff:10.0.0.0/104', 6, 104],
    ['::/0', 6, 0],
  ])('accepts %j', (text, family, prefix) => {
    expect(parseCidr(text)).toMatchObject({ text, family, prefix });
  });

  it('reads an embedded IPv4 tail as the last 32 bits', () => {
    expect(cidr('::ffff:10.1.2.3').network).toBe((0xffffn << 32n) | 0x0a010203n);
  });
});
