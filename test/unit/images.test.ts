/**
 * The example templates under images/ reference their scripts by blob URL and pin them by sha256. The
 * local copies are what gets uploaded (and what `--rewrite-uri …/artifacts/=file://$PWD/images/` runs), so
 * every URL must map to a file under images/ whose sha256 is the one the template declares.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const IMAGES = fileURLToPath(new URL('../../images/', import.meta.url));
const ARTIFACT_BASE = 'https://isobuildexamples.blob.core.windows.net/artifacts/';

interface ArtifactRef {
  readonly path: string;
  readonly uri: string;
  readonly sha256Checksum: unknown;
}

/** Every scriptUri / sourceUri in the document, with the checksum declared next to it. */
function artifactRefs(node: unknown, path = '$'): ArtifactRef[] {
  if (Array.isArray(node)) return node.flatMap((item, i) => artifactRefs(item, `${path}[${i}]`));
  if (typeof node !== 'object' || node === null) return [];
  const object = node as Record<string, unknown>;
  const refs: ArtifactRef[] = [];
  for (const key of ['scriptUri', 'sourceUri']) {
    const uri = object[key];
    if (typeof uri === 'string')
      refs.push({ path: `${path}.${key}`, uri, sha256Checksum: object.sha256Checksum });
  }
  for (const [key, child] of Object.entries(object)) refs.push(...artifactRefs(child, `${path}.${key}`));
  return refs;
}

const templates = readdirSync(IMAGES, { withFileTypes: true })
  .filter((entry) => entry.isDirectory() && existsSync(join(IMAGES, entry.name, 'template.json')))
  .map((entry) => join(entry.name, 'template.json'));

describe('example images', () => {
  it('has example templates', () => {
    expect(templates).toEqual(
      expect.arrayContaining(['linux-baseline/template.json', 'windows-baseline/template.json']),
    );
  });

  describe.each(templates)('%s', (template) => {
    const doc: unknown = JSON.parse(readFileSync(join(IMAGES, template), 'utf8'));
    const refs = artifactRefs(doc);

    it('references at least one artifact', () => {
      expect(refs.length).toBeGreaterThan(0);
    });

    it.each(refs)('$path is a local artifact with the declared sha256Checksum', ({ uri, sha256Checksum }) => {
      expect(uri.startsWith(ARTIFACT_BASE), `${uri} is not under ${ARTIFACT_BASE}`).toBe(true);
      const local = join(IMAGES, decodeURIComponent(uri.slice(ARTIFACT_BASE.length)));
      expect(existsSync(local), `${uri} maps to ${local}, which does not exist`).toBe(true);
      const actual = createHash('sha256').update(readFileSync(local)).digest('hex');
      expect(sha256Checksum, `sha256Checksum of ${uri}`).toBe(actual);
    });
  });
});
