/**
 * Version order per package kind, written from each package manager's definition: dpkg's (Debian Policy
 * 5.6.12), rpm's rpmvercmp with epoch and release, and dotted numbers for Windows. Used to tell an upgrade
 * from a downgrade; returns -1, 0 or 1. Versions that differ as text may still be equal (dpkg 1.0 and 1.00,
 * rpm 1.0 and 1_0), as in the package managers.
 */
import type { PackageKind } from './inventory.js';

export function compareVersions(kind: PackageKind, a: string, b: string): number {
  switch (kind) {
    case 'deb':
      return compareDebianVersions(a, b);
    case 'rpm':
      return compareRpmVersions(a, b);
    case 'windows-program':
    case 'windows-hotfix':
      return compareWindowsVersions(a, b);
  }
}

// ---- dpkg ----

/** dpkg's `[epoch:]upstream[-revision]`: epoch numerically, then upstream, then revision (absent = ""). */
export function compareDebianVersions(a: string, b: string): number {
  const left = splitDebian(a);
  const right = splitDebian(b);
  return (
    compareDigitStrings(left.epoch, right.epoch) ||
    compareDebianPart(left.upstream, right.upstream) ||
    compareDebianPart(left.revision, right.revision)
  );
}

function splitDebian(version: string): { epoch: string; upstream: string; revision: string } {
  const colon = version.indexOf(':');
  const hasEpoch = colon > 0 && /^\d+$/.test(version.slice(0, colon));
  const epoch = hasEpoch ? version.slice(0, colon) : '0';
  const rest = hasEpoch ? version.slice(colon + 1) : version;
  const hyphen = rest.lastIndexOf('-');
  return hyphen < 0
    ? { epoch, upstream: rest, revision: '' }
    : { epoch, upstream: rest.slice(0, hyphen), revision: rest.slice(hyphen + 1) };
}

/** A character's weight in dpkg's non-digit runs: '~' below the end of the string, letters below the rest. */
function debianWeight(c: string | undefined): number {
  if (c === undefined || isDigit(c)) return 0;
  if (isLetter(c)) return c.charCodeAt(0);
  if (c === '~') return -1;
  return c.charCodeAt(0) + 256;
}

/** Alternating runs: non-digits by weight, one character at a time; digit runs as numbers. */
function compareDebianPart(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    while ((i < a.length && !isDigit(a[i])) || (j < b.length && !isDigit(b[j]))) {
      const difference = debianWeight(a[i]) - debianWeight(b[j]);
      if (difference !== 0) return Math.sign(difference);
      i++;
      j++;
    }
    const startA = i;
    const startB = j;
    while (i < a.length && isDigit(a[i])) i++;
    while (j < b.length && isDigit(b[j])) j++;
    const numbers = compareDigitStrings(a.slice(startA, i), b.slice(startB, j));
    if (numbers !== 0) return numbers;
  }
  return 0;
}

// ---- rpm ----

/** rpm's `[epoch:]version-release`: epoch (absent = 0), version, then release (absent sorts first). */
export function compareRpmVersions(a: string, b: string): number {
  const left = splitRpm(a);
  const right = splitRpm(b);
  return (
    compareDigitStrings(left.epoch, right.epoch) ||
    rpmvercmp(left.version, right.version) ||
    compareOptional(left.release, right.release, rpmvercmp)
  );
}

function splitRpm(evr: string): { epoch: string; version: string; release: string | undefined } {
  const match = /^(\d+):(.*)$/s.exec(evr);
  const epoch = match ? match[1]! : '0';
  const rest = match ? match[2]! : evr;
  const hyphen = rest.lastIndexOf('-');
  return hyphen < 0
    ? { epoch, version: rest, release: undefined }
    : { epoch, version: rest.slice(0, hyphen), release: rest.slice(hyphen + 1) };
}

function compareOptional(
  a: string | undefined,
  b: string | undefined,
  compare: (a: string, b: string) => number,
): number {
  if (a === undefined || b === undefined) return a === b ? 0 : a === undefined ? -1 : 1;
  return compare(a, b);
}

/**
 * rpm's segment comparison: runs of digits or of letters, anything else only separates them. '~' sorts
 * before everything, the end of the string included; '^' sorts after the end but before anything else. A
 * numeric run beats a letter run; when one string runs out first, the longer one is newer.
 */
export function rpmvercmp(a: string, b: string): number {
  if (a === b) return 0;
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    while (i < a.length && isRpmSeparator(a[i]!)) i++;
    while (j < b.length && isRpmSeparator(b[j]!)) j++;
    const ca = a[i];
    const cb = b[j];
    if (ca === '~' || cb === '~') {
      if (ca !== '~') return 1;
      if (cb !== '~') return -1;
      i++;
      j++;
      continue;
    }
    if (ca === '^' || cb === '^') {
      if (ca === undefined) return -1;
      if (cb === undefined) return 1;
      if (ca !== '^') return 1;
      if (cb !== '^') return -1;
      i++;
      j++;
      continue;
    }
    if (ca === undefined || cb === undefined) break;
    const numeric = isDigit(ca);
    const inRun = numeric ? isDigit : isLetter;
    const startA = i;
    const startB = j;
    while (i < a.length && inRun(a[i])) i++;
    while (j < b.length && inRun(b[j])) j++;
    // b's run is of the other type (a letter where a has a digit, or the reverse).
    if (j === startB) return numeric ? 1 : -1;
    const runA = a.slice(startA, i);
    const runB = b.slice(startB, j);
    const order = numeric ? compareDigitStrings(runA, runB) : compareText(runA, runB);
    if (order !== 0) return order;
  }
  if (i >= a.length && j >= b.length) return 0;
  return i >= a.length ? -1 : 1;
}

function isRpmSeparator(c: string): boolean {
  return !isDigit(c) && !isLetter(c) && c !== '~' && c !== '^';
}

// ---- Windows ----

/**
 * Windows DisplayVersion and the like ("10.0.20348.1", "1.2.3 beta"): dot-separated segments, each its
 * leading number (numerically) then the rest (as text); a missing or empty segment counts as "0", so
 * 1.0 = 1.0.0.
 */
export function compareWindowsVersions(a: string, b: string): number {
  const left = a.trim().split('.');
  const right = b.trim().split('.');
  for (let index = 0; index < Math.max(left.length, right.length); index++) {
    const order = compareWindowsSegment(left[index] ?? '0', right[index] ?? '0');
    if (order !== 0) return order;
  }
  return 0;
}

function compareWindowsSegment(a: string, b: string): number {
  // An empty segment ("1..2", or an empty version) counts as 0, like a missing one.
  const [, numberA = '', restA = ''] = /^(\d*)(.*)$/s.exec(a || '0')!;
  const [, numberB = '', restB = ''] = /^(\d*)(.*)$/s.exec(b || '0')!;
  // A segment without a leading number ("beta") sorts before any number.
  if (numberA === '' || numberB === '') {
    if (numberA !== numberB) return numberA === '' ? -1 : 1;
  } else {
    const numbers = compareDigitStrings(numberA, numberB);
    if (numbers !== 0) return numbers;
  }
  return compareText(restA, restB);
}

// ---- shared ----

/** Two runs of ASCII digits as numbers of any size ("" is 0). */
function compareDigitStrings(a: string, b: string): number {
  const x = a.replace(/^0+/, '');
  const y = b.replace(/^0+/, '');
  if (x.length !== y.length) return x.length < y.length ? -1 : 1;
  return compareText(x, y);
}

/** By code unit, as C's strcmp on ASCII: the same order on every machine, whatever its locale. */
function compareText(a: string, b: string): number {
  return a === b ? 0 : a < b ? -1 : 1;
}

function isDigit(c: string | undefined): boolean {
  return c !== undefined && c >= '0' && c <= '9';
}

function isLetter(c: string | undefined): boolean {
  return c !== undefined && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'));
}
