import { describe, expect, it } from 'vitest';
import { isAllowedSource, parseCidr, type Cidr } from '../../proxy/src/policy.js';

const cidrs = (...texts: string[]): Cidr[] => texts.map((t) => parseCidr(t)!);

describe('isAllowedSource', () => {
  it.each([
    ['10.1.2.3', ['10.0.0.0/8'], true],
    ['11.1.2.3', ['10.0.0.0/8'], false],
    ['::ffff:10.1.2.3', ['10.0.0.0/8'], true],
    ['168.63.129.16', ['168.63.129.16/32'], true],
    ['168.63.129.17', ['168.63.129.16'], false],
    ['127.0.0.1', [], true],
    ['fd00::5', ['fd00::/64'], true],
    ['fd01::5', ['fd00::/64'], false],
    ['10.1.2.3', ['fd00::/8'], false],
    [undefined, ['10.0.0.0/8'], false],
  ])('%s with %j → %s', (address, allow, expected) => {
    expect(isAllowedSource(address, cidrs(...allow))).toBe(expected);
  });
});

describe('parseCidr', () => {
  it.each(['10.0.0.0/33', 'example.com/8', '10.0.0/8', '::1/129', ''])('rejects %j', (text) => {
    expect(parseCidr(text)).toBeUndefined();
  });
});
