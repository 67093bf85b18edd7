/**
 * GET over http or https with isobuild's redirect policy, on node:http so that no timeout but the
 * attempt's own applies. Redirects are followed by hand: at most 10, never in a circle, never to another
 * scheme (a server must not make isobuild read file:///etc/… or ftp://), and never from https down to http.
 */
import { request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { hideUrlSecrets } from '../hide-query.js';
import type { AttemptWatchdog } from './attempt-watchdog.js';
import { DownloadError, HINTS } from './download-error.js';

export const MAX_REDIRECTS = 10;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

/**
 * The final response, not yet read. `headersFor` gives each hop's request headers, so credentials can be
 * limited to the URL they belong to.
 */
export async function getFollowingRedirects(
  start: URL,
  headersFor: (url: URL) => OutgoingHttpHeaders,
  watchdog: AttemptWatchdog,
): Promise<IncomingMessage> {
  const visited = [withoutFragment(start)];
  for (let url = start; ;) {
    const response = await getOnce(url, headersFor(url), watchdog);
    const location = response.headers.location;
    if (!REDIRECT_STATUSES.has(response.statusCode ?? 0) || location === undefined) return response;
    response.destroy();
    const next = redirectTarget(url, location);
    const chain = [...visited, next].map((hop) => hideUrlSecrets(hop)).join(' → ');
    if (visited.includes(next))
      throw new DownloadError(`the server redirects in a loop: ${chain}`, false, HINTS.redirect);
    if (visited.length > MAX_REDIRECTS)
      throw new DownloadError(
        `the server redirected more than ${MAX_REDIRECTS} times (${hideUrlSecrets(visited[0]!)} → … → ${hideUrlSecrets(next)})`,
        false,
        HINTS.redirect,
      );
    visited.push(next);
    url = new URL(next);
  }
}

/** The absolute URL a Location header points to, if isobuild may follow it. */
function redirectTarget(from: URL, location: string): string {
  let next: URL;
  try {
    next = new URL(location, from);
  } catch {
    throw new DownloadError(
      `${hideUrlSecrets(from.href)} redirected to ${JSON.stringify(hideUrlSecrets(location))}, which is not a valid URL`,
      false,
      HINTS.redirect,
    );
  }
  if (next.protocol !== 'http:' && next.protocol !== 'https:')
    throw new DownloadError(
      `${hideUrlSecrets(from.href)} redirected to a ${next.protocol} URL (${hideUrlSecrets(next.href)}), which isobuild never follows`,
      false,
      'Point the template at an https URL.',
    );
  if (from.protocol === 'https:' && next.protocol === 'http:')
    throw new DownloadError(
      `${hideUrlSecrets(from.href)} redirected from https down to ${hideUrlSecrets(next.href)}, which isobuild never follows`,
      false,
      'Point the template at an https URL, or at the http:// URL itself if plain http is acceptable.',
    );
  return withoutFragment(next);
}

function withoutFragment(url: URL): string {
  const copy = new URL(url);
  copy.hash = '';
  return copy.href;
}

/** One request on a connection of its own (no keep-alive pool: a reused, half-dead socket is one fault less). */
function getOnce(
  url: URL,
  headers: OutgoingHttpHeaders,
  watchdog: AttemptWatchdog,
): Promise<IncomingMessage> {
  const secure = url.protocol === 'https:';
  watchdog.enter('connecting', `${url.hostname}:${url.port || (secure ? 443 : 80)}`);
  return new Promise((resolve, reject) => {
    const request = (secure ? httpsRequest : httpRequest)(url, {
      method: 'GET',
      headers,
      agent: false,
      signal: watchdog.signal,
    });
    request.once('socket', (socket) => {
      socket.once('connect', () => watchdog.enter(secure ? 'tls' : 'waiting'));
      if (secure) socket.once('secureConnect', () => watchdog.enter('waiting'));
    });
    request.once('response', (response) => {
      // The caller reads the body through pipeline(), which reports its errors; this keeps an error
      // after an early destroy() (a refused redirect, an oversized body) from going unhandled.
      response.on('error', () => undefined);
      watchdog.enter('receiving');
      resolve(response);
    });
    // Later errors (a reset mid-body) reach the caller through the response stream.
    request.on('error', reject);
    request.end();
  });
}
