/**
 * Finds quickstart placeholders such as `<subscriptionID>` that were never replaced. They are reported
 * together, in one problem, because the fix is one sed command, not twenty separate edits.
 */
import { formatPath, type Problem } from '../errors.js';
import type { JsonValue } from './json-source.js';
import { SCRIPT_TEXT_FIELDS } from './schema.js';

const PLACEHOLDER = /<([A-Za-z][A-Za-z0-9_.-]{0,40})>/g;

/** Adds one error listing every placeholder and returns the paths that hold one (so later checks skip them). */
export function findPlaceholders(
  value: JsonValue,
  base: (string | number)[],
  problems: Problem[],
): Set<string> {
  const found = new Map<string, string[]>();
  const paths = new Set<string>();
  const visit = (node: JsonValue, path: (string | number)[]): void => {
    const last = path[path.length - 1];
    if (typeof last === 'string' && SCRIPT_TEXT_FIELDS.has(last)) return;
    if (typeof node === 'string') {
      for (const match of node.matchAll(PLACEHOLDER)) add(match[0], path);
    } else if (Array.isArray(node)) {
      node.forEach((item, i) => visit(item, [...path, i]));
    } else if (node !== null && typeof node === 'object') {
      for (const [key, child] of Object.entries(node)) {
        for (const match of key.matchAll(PLACEHOLDER)) add(match[0], [...path, key]);
        visit(child, [...path, key]);
      }
    }
  };
  const add = (placeholder: string, path: (string | number)[]): void => {
    const where = formatPath(path);
    paths.add(where);
    const list = found.get(placeholder) ?? [];
    if (!list.includes(where)) list.push(where);
    found.set(placeholder, list);
  };
  visit(value, base);
  if (found.size > 0) {
    const listing = [...found].map(([name, where]) => `${name} (at ${where.join(', ')})`).join('; ');
    problems.push({
      severity: 'error',
      path: [...paths][0] ?? formatPath(base),
      message:
        `unfilled placeholders: ${listing}. Replace each with a real value before building, as the quickstart does ` +
        `(for example: sed -i -e "s/<subscriptionID>/$subscriptionID/g" template.json).`,
    });
  }
  return paths;
}
