/** URLs may carry SAS tokens in their query string: everything isobuild prints shows them without it. */
export function hideQuery(url: string): string {
  const q = url.indexOf('?');
  return q < 0 ? url : `${url.slice(0, q)}?<query hidden>`;
}
