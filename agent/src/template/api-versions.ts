/** The imageTemplates API versions isobuild understands, oldest first, and what changes between them. */

export const API_VERSIONS = [
  '2019-02-01-preview',
  '2019-05-01-preview',
  '2020-02-14',
  '2021-10-01',
  '2022-02-14',
  '2022-07-01',
  '2023-07-01',
  '2024-02-01',
  '2025-10-01',
] as const;

export type ApiVersion = (typeof API_VERSIONS)[number];

export const LATEST_API_VERSION: ApiVersion = '2025-10-01';

/** From this version AIB rejects unknown fields and compares names and enum values case-sensitively. */
export const FIRST_STRICT_API_VERSION: ApiVersion = '2024-02-01';

export function isApiVersion(value: string): value is ApiVersion {
  return (API_VERSIONS as readonly string[]).includes(value);
}

export function isPreview(version: ApiVersion): boolean {
  return version.endsWith('-preview');
}

/** True when `version` is `since` or newer. */
export function atLeast(version: ApiVersion, since: ApiVersion): boolean {
  return API_VERSIONS.indexOf(version) >= API_VERSIONS.indexOf(since);
}

export function isStrict(version: ApiVersion): boolean {
  return atLeast(version, FIRST_STRICT_API_VERSION);
}
