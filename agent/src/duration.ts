/** Go-style durations: 500ms, 90s, 5m, 1h30m. */
export function parseDuration(text: string): number | undefined {
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  if (!/^(\d+(\.\d+)?(ms|h|m|s))+$/.test(text)) return undefined;
  let total = 0;
  for (const match of text.matchAll(/(\d+(?:\.\d+)?)(ms|h|m|s)/g))
    total += Number(match[1]) * units[match[2]!]!;
  return Math.round(total);
}

/**
 * The longest duration any setting accepts: ten times AIB's longest build (960 minutes) and far below
 * what a timer can hold (about 24.8 days; beyond that Node fires it at once).
 */
export const MAX_DURATION_MS = 7 * 24 * 3_600_000;

/** Parses a duration setting, or says what is wrong with it in words a user can act on. */
export function readDuration(text: string): { ms: number } | { problem: string } {
  const ms = parseDuration(text);
  if (ms === undefined) return { problem: `"${text}" is not a duration; write it like 90s, 5m or 1h30m.` };
  if (ms > MAX_DURATION_MS)
    return { problem: `"${text}" is longer than the maximum of 7 days (168h); choose a shorter duration.` };
  return { ms };
}
