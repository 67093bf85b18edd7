/**
 * URLs may carry secrets: SAS tokens in the query string, a user and password before the host
 * (`https://user:token@mirror/…`). Everything isobuild prints or records shows them without either.
 */
export function hideUrlSecrets(url: string): string {
  const q = url.indexOf('?');
  const withoutQuery = q < 0 ? url : `${url.slice(0, q)}?<query hidden>`;
  // scheme://userinfo@host: userinfo runs to the last @ before the path (a password may hold an @ itself).
  return withoutQuery.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i, '$1<credentials hidden>@');
}
