/** The build's one line about its SBOM: packages, what changed since the source image, and the baseline. */
import { describe, expect, it } from 'vitest';
import { describeChanges, summaryLine } from '../../agent/src/run/sbom-record.js';
import type { PackageChanges } from '../../agent/src/run/run-status.js';

const changes = (counts: Partial<PackageChanges>): PackageChanges => ({
  added: 0,
  removed: 0,
  upgraded: 0,
  downgraded: 0,
  ...counts,
});

describe('summaryLine', () => {
  it('counts packages and names each kind of change since the source image', () => {
    expect(
      summaryLine(
        { packages: 412, changes: changes({ added: 37, upgraded: 3, unchanged: 372 }) },
        { source: 'collected' },
      ),
    ).toBe('SBOM: 412 packages, 37 added, 3 upgraded since the source image');
    expect(
      summaryLine(
        { packages: 9, changes: changes({ added: 1, removed: 2, upgraded: 3, downgraded: 4 }) },
        { source: 'collected' },
      ),
    ).toBe('SBOM: 9 packages, 1 added, 2 removed, 3 upgraded, 4 downgraded since the source image');
  });

  it('says "no changes" when nothing changed', () => {
    expect(
      summaryLine({ packages: 412, changes: changes({ unchanged: 412 }) }, { source: 'collected' }),
    ).toBe('SBOM: 412 packages, no changes since the source image');
  });

  it('names the earlier run whose baseline it compared against', () => {
    const earlier = { source: 'earlier run', detail: 'taken in run 20260101-120000-ab12' } as const;
    expect(summaryLine({ packages: 412, changes: changes({ removed: 2 }) }, earlier)).toBe(
      'SBOM: 412 packages, 2 removed since the source image (taken in run 20260101-120000-ab12)',
    );
    expect(summaryLine({ packages: 412, changes: changes({}) }, earlier)).toBe(
      'SBOM: 412 packages, no changes since the source image (taken in run 20260101-120000-ab12)',
    );
  });

  it('says why there is no baseline, or that nothing was customized', () => {
    expect(
      summaryLine(
        { packages: 412 },
        {
          source: 'unavailable',
          detail: '--from-step starts on a VM that is already customized part-way',
        },
      ),
    ).toBe(
      'SBOM: 412 packages (no baseline: --from-step starts on a VM that is already customized part-way)',
    );
    expect(summaryLine({ packages: 412 }, { source: 'unavailable' })).toBe(
      'SBOM: 412 packages (no baseline)',
    );
    // No baseline because nothing was customized (source validation only): the SBOM is the source image's.
    expect(summaryLine({ packages: 412 }, undefined)).toBe(
      'SBOM: 412 packages (the source image: no customizer ran)',
    );
    expect(summaryLine({}, undefined)).toBe('SBOM: 0 packages (the source image: no customizer ran)');
  });
});

describe('describeChanges', () => {
  it('lists the non-zero counts in a fixed order: added, removed, upgraded, downgraded', () => {
    expect(describeChanges(changes({ downgraded: 1, added: 2 }))).toBe('2 added, 1 downgraded');
    expect(describeChanges(changes({ removed: 5 }))).toBe('5 removed');
    expect(describeChanges(changes({ upgraded: 1, removed: 1, downgraded: 1, added: 1 }))).toBe(
      '1 added, 1 removed, 1 upgraded, 1 downgraded',
    );
  });

  it('is empty when nothing changed (unchanged packages and an OS change are not counted here)', () => {
    expect(describeChanges(changes({ unchanged: 412, osChanged: true }))).toBe('');
  });
});
