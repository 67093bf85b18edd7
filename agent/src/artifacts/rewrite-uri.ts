/**
 * `--rewrite-uri FROM=TO`: points public artifact URLs at a mirror, like git's `url.<base>.insteadOf`.
 * The longest matching FROM wins. TO may be a URL or a local directory (made into a file:// URL).
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { IsobuildError } from '../errors.js';

export interface UriRewrite {
  readonly from: string;
  readonly to: string;
}

export function parseRewrite(spec: string, cwd = process.cwd()): UriRewrite {
  const eq = spec.indexOf('=');
  if (eq <= 0 || eq === spec.length - 1) {
    throw new IsobuildError(
      'usage',
      `--rewrite-uri ${spec}: expected FROM=TO, e.g. https://raw.githubusercontent.com/org/repo/main/=https://mirror.example/repo/.`,
    );
  }
  const from = spec.slice(0, eq);
  const target = spec.slice(eq + 1);
  if (/^[a-z][a-z0-9+.-]*:/i.test(target)) return { from, to: target };
  // A local path: keep a trailing slash, since FROM prefixes usually end in one.
  const url = pathToFileURL(resolve(cwd, target)).href;
  return { from, to: target.endsWith('/') && !url.endsWith('/') ? `${url}/` : url };
}

export function rewriteUri(uri: string, rewrites: readonly UriRewrite[]): string {
  let best: UriRewrite | undefined;
  for (const rule of rewrites) {
    if (uri.startsWith(rule.from) && (!best || rule.from.length > best.from.length)) best = rule;
  }
  return best ? best.to + uri.slice(best.from.length) : uri;
}
