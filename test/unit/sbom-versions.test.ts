/**
 * Version order: the well-known tricky cases, properties of an order (fast-check), and dpkg's and rpm's own
 * comparison as the oracle on random versions where this machine has them.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  compareDebianVersions,
  compareRpmVersions,
  compareVersions,
  compareWindowsVersions,
} from '../../agent/src/sbom/versions.js';

type Compare = (a: string, b: string) => number;

/** Versions from the characters each package manager gives meaning to, so runs and separators collide. */
const debVersion = fc
  .tuple(
    fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined }),
    fc.stringMatching(/^[0-9][0-9a-z.+~]{0,7}$/),
    fc.option(fc.stringMatching(/^[0-9a-z.+~]{1,6}$/), { nil: undefined }),
  )
  .map(
    ([epoch, upstream, revision]) =>
      `${epoch === undefined ? '' : `${epoch}:`}${upstream}${revision ? `-${revision}` : ''}`,
  );
const rpmVersion = fc
  .tuple(
    fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined }),
    fc.stringMatching(/^[0-9a-zA-Z._+~^]{1,8}$/),
    fc.option(fc.stringMatching(/^[0-9a-z._~^]{1,6}$/), { nil: undefined }),
  )
  .map(
    ([epoch, version, release]) =>
      `${epoch === undefined ? '' : `${epoch}:`}${version}${release ? `-${release}` : ''}`,
  );
const windowsVersion = fc.stringMatching(/^[0-9a-z. ]{0,10}$/);

function expectOrder(compare: Compare, ordered: readonly string[]): void {
  for (let i = 0; i < ordered.length; i++) {
    for (let j = 0; j < ordered.length; j++) {
      const expected = Math.sign(i - j);
      expect(compare(ordered[i]!, ordered[j]!), `${ordered[i]} vs ${ordered[j]}`).toBe(expected);
    }
  }
}

function orderProperties(name: string, compare: Compare, version: fc.Arbitrary<string>): void {
  describe(`${name}: an order`, () => {
    it('is reflexive and antisymmetric', () => {
      fc.assert(
        fc.property(version, version, (a, b) => {
          expect(compare(a, a)).toBe(0);
          expect(Math.sign(compare(a, b)) + Math.sign(compare(b, a))).toBe(0);
        }),
        { numRuns: 2000 },
      );
    });

    it('is transitive: a sorted list is in order pairwise', () => {
      fc.assert(
        fc.property(fc.array(version, { minLength: 3, maxLength: 12 }), (versions) => {
          const sorted = [...versions].sort(compare);
          for (let i = 0; i < sorted.length; i++) {
            for (let j = i + 1; j < sorted.length; j++)
              expect(compare(sorted[i]!, sorted[j]!)).toBeLessThanOrEqual(0);
          }
        }),
        { numRuns: 500 },
      );
    });

    it('is transitive on triples that chain', () => {
      fc.assert(
        fc.property(version, version, version, (a, b, c) => {
          if (compare(a, b) <= 0 && compare(b, c) <= 0) expect(compare(a, c)).toBeLessThanOrEqual(0);
        }),
        { numRuns: 2000 },
      );
    });

    it('compares digit runs as numbers of any size', () => {
      fc.assert(
        fc.property(
          fc.bigInt({ min: 0n, max: 10n ** 30n }),
          fc.bigInt({ min: 0n, max: 10n ** 30n }),
          (x, y) => {
            expect(compare(`1.${x}`, `1.${y}`)).toBe(x < y ? -1 : x > y ? 1 : 0);
          },
        ),
      );
    });
  });
}

orderProperties('dpkg', compareDebianVersions, debVersion);
orderProperties('rpm', compareRpmVersions, rpmVersion);
orderProperties('Windows', compareWindowsVersions, windowsVersion);

describe('dpkg order', () => {
  it('the well-known cases', () => {
    // Debian Policy's own example: ~~ < ~~a < ~ < (nothing) < a
    expectOrder(compareDebianVersions, ['1.0~~', '1.0~~a', '1.0~', '1.0', '1.0a']);
    expectOrder(compareDebianVersions, ['1.0~rc1', '1.0~rc2', '1.0', '1.0+b1', '1.0.1']);
    expectOrder(compareDebianVersions, ['2.0', '1:0.1', '2:0.0.1']);
    expectOrder(compareDebianVersions, ['1.0-1', '1.0-1ubuntu1', '1.0-1ubuntu1.1', '1.0-2']);
    expectOrder(compareDebianVersions, ['2.4-1', '2.30-1', '10.0-1']);
    // letters before non-letters: '.' after 'a', '+' after a letter too
    expectOrder(compareDebianVersions, ['1.0a', '1.0+', '1.0.']);
    expectOrder(compareDebianVersions, ['2.36-9+deb12u13', '2.36-9+deb12u14', '2.36-10']);
  });

  it('absent revision, leading zeros and a zero epoch are equal to their spelled-out forms', () => {
    expect(compareDebianVersions('1.0', '1.0-0')).toBe(0);
    expect(compareDebianVersions('1.01', '1.1')).toBe(0);
    expect(compareDebianVersions('0:1.0', '1.0')).toBe(0);
  });

  const dpkg = spawnSync('dpkg', ['--version']).status === 0;
  it.runIf(dpkg)('agrees with dpkg --compare-versions on random versions', () => {
    const pairs = fc.sample(fc.tuple(debVersion, debVersion), { numRuns: 300, seed: 15 });
    // One shell for all pairs: lt, eq or gt per line.
    const script = pairs
      .map(
        ([a, b]) =>
          `if dpkg --compare-versions '${a}' lt '${b}'; then echo -1; elif dpkg --compare-versions '${a}' eq '${b}'; then echo 0; else echo 1; fi`,
      )
      .join('\n');
    const verdicts = execFileSync('/bin/sh', ['-c', script], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .map(Number);
    expect(pairs.map(([a, b]) => compareDebianVersions(a, b))).toEqual(verdicts);
  });
});

describe('rpm order', () => {
  it('the well-known cases', () => {
    expectOrder(compareRpmVersions, ['1.0~rc1', '1.0', '1.0a', '1.0.1']);
    expectOrder(compareRpmVersions, ['1.0~rc1', '1.0', '1.0^git1', '1.0.1']);
    expectOrder(compareRpmVersions, ['1.0~~', '1.0~', '1.0~^', '1.0']);
    expectOrder(compareRpmVersions, ['2.0', '1:0.1', '2:0.0.1']);
    expectOrder(compareRpmVersions, ['5.14.0-362.8.1.el9_3', '5.14.0-427.13.1.el9_4', '5.14.0-503.el9']);
    expectOrder(compareRpmVersions, ['1.0-1.el9', '1.0-1.el9_2', '1.0-2.el9']);
    // a numeric run beats a letter run
    expectOrder(compareRpmVersions, ['2.0a', '2.0.1']);
    // absent release sorts first
    expectOrder(compareRpmVersions, ['1.0', '1.0-0', '1.0-1']);
    // …even before a release that starts with '~' (as rpm.vercmp says)
    expectOrder(compareRpmVersions, ['1.0', '1.0-~1']);
  });

  it('separators only separate: 1.0 = 1_0 = 1..0', () => {
    expect(compareRpmVersions('1.0', '1_0')).toBe(0);
    expect(compareRpmVersions('1.0', '1..0')).toBe(0);
    expect(compareRpmVersions('1.01', '1.1')).toBe(0);
  });

  const rpm = spawnSync('rpm', ['--version']).status === 0;
  it.runIf(rpm)("agrees with rpm's own rpm.vercmp on random versions (where rpm is installed)", () => {
    const pairs = fc.sample(fc.tuple(rpmVersion, rpmVersion), { numRuns: 300, seed: 15 });
    // rpm's Lua compares whole EVR strings, epoch and release included.
    const lua = pairs
      .map(([a, b]) => `print(rpm.vercmp(${JSON.stringify(a)}, ${JSON.stringify(b)}) .. ';')`)
      .join(' ');
    const verdicts = execFileSync('rpm', ['--eval', `%{lua: ${lua}}`], { encoding: 'utf8' })
      .trim()
      .split(';')
      .slice(0, -1)
      .map(Number);
    expect(pairs.map(([a, b]) => compareRpmVersions(a, b))).toEqual(verdicts);
  });
});

describe('Windows order', () => {
  it('dotted numbers, then the rest as text', () => {
    expectOrder(compareWindowsVersions, ['9.1', '10.0.17763', '10.0.20348', '10.0.20348.1']);
    expectOrder(compareWindowsVersions, ['1.9', '1.10', '1.10a', '1.10b', '2']);
    expectOrder(compareWindowsVersions, ['1.beta', '1.0', '1.1']);
    expect(compareWindowsVersions('1.0', '1.0.0')).toBe(0);
    expect(compareWindowsVersions('', '0')).toBe(0);
  });
});

describe('compareVersions', () => {
  it('takes the order of the package kind', () => {
    expect(compareVersions('deb', '1.0', '1_0')).not.toBe(0);
    expect(compareVersions('rpm', '1.0', '1_0')).toBe(0);
    expect(compareVersions('windows-program', '1.0', '1.0.0')).toBe(0);
    expect(compareVersions('windows-hotfix', '', '')).toBe(0);
  });
});
