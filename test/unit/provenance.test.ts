/**
 * The provenance record: the in-toto Statement v1 / SLSA Provenance v1 shape buildProvenance writes, and
 * readProvenance reading it back (and refusing what is not one). No npm package ships the JSON schemas of
 * either spec, so the fields both specs require are checked here by `specProblems`, one rule at a time.
 */
import { describe, expect, it } from 'vitest';
import {
  buildProvenance,
  BUILD_TYPE,
  BUILDER_ID,
  readProvenance,
  SLSA_PROVENANCE_V1,
  STATEMENT_TYPE,
  type ProvenanceInput,
} from '../../agent/src/provenance/provenance.js';

const sha = (char: string): string => char.repeat(64);

const INPUT: ProvenanceInput = {
  runId: '20260101-120000-ab12',
  runState: 'Succeeded',
  startedOn: '2026-01-01T12:00:00.000Z',
  finishedOn: '2026-01-01T12:31:07.250Z',
  template: {
    file: 'images/linux-baseline/template.json',
    sha256: sha('a'),
    name: 'linux-baseline',
    apiVersion: '2024-02-01',
    parameterFile: { name: 'images/linux-baseline/parameters.json', sha256: sha('b') },
  },
  os: 'linux',
  topology: 'proxy',
  hop: 'proxy 127.0.0.1:60001 to 127.0.0.1:22',
  versions: { isobuild: '0.1.0', packer: '1.11.2' },
  artifacts: [
    {
      step: 'install tools',
      uri: 'https://acct.blob.core.windows.net/scripts/install.sh?<query hidden>',
      fetchedFrom: 'http://127.0.0.1:8080/scripts/install.sh',
      sha256: sha('c'),
      bytes: 812,
      checksumVerified: true,
    },
    {
      step: 'motd',
      uri: 'http://127.0.0.1:8080/files/motd',
      fetchedFrom: 'http://127.0.0.1:8080/files/motd',
      sha256: sha('d'),
      bytes: 40,
      checksumVerified: false,
    },
  ],
  steps: [
    {
      position: 1,
      kind: 'customizer',
      name: 'install tools',
      type: 'Shell',
      outcome: 'skipped',
      digest: sha('e'),
      doneIn: '20251231-090000-cd34',
    },
    {
      position: 2,
      kind: 'customizer',
      name: 'motd',
      type: 'File',
      outcome: 'succeeded',
      durationMs: 0,
      digest: sha('f'),
    },
    { position: 3, kind: 'validator', name: 'motd', type: 'File', outcome: 'succeeded', durationMs: 1200 },
    { position: 4, kind: 'deprovision step', name: 'deprovision', type: 'Shell', outcome: 'failed' },
  ],
  subjects: [
    { name: 'build-bundle.tar.gz', sha256: sha('1') },
    { name: 'sbom.cdx.json', sha256: sha('2') },
  ],
};

type Json = Record<string, unknown>;
const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;

/**
 * What the in-toto Statement v1 and SLSA Provenance v1 specs require of the fields this record uses:
 * the statement's four fields, a digest on every subject, the predicate's required buildType,
 * externalParameters and builder.id, RFC 3339 times, a string map for builder.version, and the
 * ResourceDescriptor rule (uri, digest or content) for subjects and resolved dependencies.
 */
function specProblems(doc: unknown): string[] {
  const problems: string[] = [];
  const need = (ok: boolean, what: string): void => {
    if (!ok) problems.push(what);
  };
  if (!isObject(doc)) return ['the statement is not an object'];
  need(doc._type === STATEMENT_TYPE, '_type is the Statement v1 URI');
  need(typeof doc.predicateType === 'string', 'predicateType is a string');
  need(isObject(doc.predicate), 'predicate is an object');
  const digestOk = (digest: unknown): boolean =>
    isObject(digest) &&
    Object.keys(digest).length > 0 &&
    Object.values(digest).every((v) => typeof v === 'string') &&
    (digest.sha256 === undefined || SHA256_HEX.test(digest.sha256 as string));
  const descriptorOk = (rd: unknown): boolean =>
    isObject(rd) &&
    (typeof rd.uri === 'string' || rd.content !== undefined || digestOk(rd.digest)) &&
    (rd.digest === undefined || digestOk(rd.digest));
  need(Array.isArray(doc.subject) && doc.subject.length > 0, 'subject is a non-empty array');
  for (const [i, s] of ((doc.subject as unknown[]) ?? []).entries())
    need(isObject(s) && digestOk(s.digest), `subject[${i}] has a digest`);
  const predicate = isObject(doc.predicate) ? doc.predicate : {};
  const definition = isObject(predicate.buildDefinition) ? predicate.buildDefinition : undefined;
  need(definition !== undefined, 'predicate.buildDefinition is an object');
  need(typeof definition?.buildType === 'string', 'buildDefinition.buildType is a string');
  need(isObject(definition?.externalParameters), 'buildDefinition.externalParameters is an object');
  const dependencies = definition?.resolvedDependencies;
  need(dependencies === undefined || Array.isArray(dependencies), 'resolvedDependencies is an array');
  for (const [i, d] of ((dependencies as unknown[]) ?? []).entries())
    need(descriptorOk(d), `resolvedDependencies[${i}] names a uri, digest or content`);
  const details = isObject(predicate.runDetails) ? predicate.runDetails : undefined;
  need(details !== undefined, 'predicate.runDetails is an object');
  const builder = isObject(details?.builder) ? details.builder : undefined;
  need(typeof builder?.id === 'string', 'runDetails.builder.id is a string');
  need(
    builder?.version === undefined ||
      (isObject(builder.version) && Object.values(builder.version).every((v) => typeof v === 'string')),
    'builder.version is a map of strings',
  );
  const metadata = isObject(details?.metadata) ? details.metadata : {};
  need(metadata.invocationId === undefined || typeof metadata.invocationId === 'string', 'invocationId');
  for (const time of ['startedOn', 'finishedOn'])
    need(metadata[time] === undefined || RFC3339.test(metadata[time] as string), `${time} is RFC 3339`);
  need(details?.byproducts === undefined || Array.isArray(details.byproducts), 'byproducts is an array');
  return problems;
}

describe('buildProvenance', () => {
  const statement = buildProvenance(INPUT) as Json;
  const predicate = statement.predicate as Json;
  const definition = predicate.buildDefinition as Json;
  const details = predicate.runDetails as Json;

  it('has the fields the in-toto Statement v1 and SLSA Provenance v1 specs require', () => {
    expect(specProblems(statement)).toEqual([]);
    // The checker itself must notice a broken statement.
    expect(specProblems({ ...statement, subject: [{ name: 'x' }] })).toEqual(['subject[0] has a digest']);
    expect(specProblems({ ...statement, predicate: { runDetails: details } })).toContain(
      'buildDefinition.buildType is a string',
    );
  });

  it('is a Statement v1 whose subjects are the hashed outputs and whose predicate is SLSA provenance v1', () => {
    expect(statement._type).toBe('https://in-toto.io/Statement/v1');
    expect(statement.predicateType).toBe('https://slsa.dev/provenance/v1');
    expect(statement.subject).toEqual([
      { name: 'build-bundle.tar.gz', digest: { sha256: sha('1') } },
      { name: 'sbom.cdx.json', digest: { sha256: sha('2') } },
    ]);
    expect(definition.buildType).toBe(BUILD_TYPE);
  });

  it('names the template by path, digest and API version, and the parameter file when there is one', () => {
    expect((definition.externalParameters as Json).template).toEqual({
      path: 'images/linux-baseline/template.json',
      digest: { sha256: sha('a') },
      name: 'linux-baseline',
      apiVersion: '2024-02-01',
      parameterFile: { path: 'images/linux-baseline/parameters.json', digest: { sha256: sha('b') } },
    });
    expect((definition.externalParameters as Json).os).toBe('linux');
    expect(definition.internalParameters).toEqual({
      topology: 'proxy',
      hop: 'proxy 127.0.0.1:60001 to 127.0.0.1:22',
    });
  });

  it('leaves out the parameter file, the name and resumedFrom when the run has none', () => {
    const { file, sha256, apiVersion } = INPUT.template;
    const template = { file, sha256, apiVersion };
    const plain = buildProvenance({ ...INPUT, template }) as Json;
    const external = ((plain.predicate as Json).buildDefinition as Json).externalParameters as Json;
    expect(external.template).toEqual({
      path: 'images/linux-baseline/template.json',
      digest: { sha256: sha('a') },
      apiVersion: '2024-02-01',
    });
    expect(external).not.toHaveProperty('resumedFrom');
    const resumed = buildProvenance({
      ...INPUT,
      resumedFrom: { runId: '20251231-090000-cd34', fromStep: 2 },
    }) as Json;
    expect(
      (((resumed.predicate as Json).buildDefinition as Json).externalParameters as Json).resumedFrom,
    ).toEqual({ runId: '20251231-090000-cd34', fromStep: 2 });
  });

  it('gives each artifact as fetched (uri), with the template URI and whether it was rewritten', () => {
    expect(definition.resolvedDependencies).toEqual([
      {
        uri: 'http://127.0.0.1:8080/scripts/install.sh',
        digest: { sha256: sha('c') },
        name: 'install tools',
        annotations: {
          templateUri: 'https://acct.blob.core.windows.net/scripts/install.sh?<query hidden>',
          rewritten: true,
          bytes: 812,
          checksumVerified: true,
        },
      },
      {
        uri: 'http://127.0.0.1:8080/files/motd',
        digest: { sha256: sha('d') },
        name: 'motd',
        annotations: {
          templateUri: 'http://127.0.0.1:8080/files/motd',
          rewritten: false,
          bytes: 40,
          checksumVerified: false,
        },
      },
    ]);
  });

  it('names the builder with both versions and the run as the invocation', () => {
    expect(details.builder).toEqual({ id: BUILDER_ID, version: { isobuild: '0.1.0', packer: '1.11.2' } });
    expect(details.metadata).toEqual({
      invocationId: '20260101-120000-ab12',
      startedOn: '2026-01-01T12:00:00.000Z',
      finishedOn: '2026-01-01T12:31:07.250Z',
    });
  });

  it('records the run state and each step with its outcome, duration, digest, doneIn and kind', () => {
    expect(details.byproducts).toEqual([
      { name: 'run', uri: 'isobuild:run/20260101-120000-ab12', annotations: { runState: 'Succeeded' } },
      {
        name: 'step 1: Shell "install tools"',
        uri: 'isobuild:run/20260101-120000-ab12/step/1',
        digest: { sha256: sha('e') },
        annotations: { kind: 'customizer', outcome: 'skipped', doneIn: '20251231-090000-cd34' },
      },
      {
        // A duration of 0 is a duration: kept.
        name: 'step 2: File "motd"',
        uri: 'isobuild:run/20260101-120000-ab12/step/2',
        digest: { sha256: sha('f') },
        annotations: { kind: 'customizer', outcome: 'succeeded', durationMs: 0 },
      },
      {
        name: 'step 3: File "motd"',
        uri: 'isobuild:run/20260101-120000-ab12/step/3',
        annotations: { kind: 'validator', outcome: 'succeeded', durationMs: 1200 },
      },
      {
        name: 'step 4: Shell "deprovision"',
        uri: 'isobuild:run/20260101-120000-ab12/step/4',
        annotations: { kind: 'deprovision step', outcome: 'failed' },
      },
    ]);
  });
});

describe('readProvenance', () => {
  it('reads back what buildProvenance wrote', () => {
    const facts = readProvenance(JSON.stringify(buildProvenance(INPUT), null, 2));
    expect(facts).toEqual({
      versions: { isobuild: '0.1.0', packer: '1.11.2' },
      template: { path: 'images/linux-baseline/template.json', sha256: sha('a') },
      artifacts: [
        { step: 'install tools', uri: 'http://127.0.0.1:8080/scripts/install.sh', sha256: sha('c') },
        { step: 'motd', uri: 'http://127.0.0.1:8080/files/motd', sha256: sha('d') },
      ],
      steps: [
        {
          name: 'step 1: Shell "install tools"',
          kind: 'customizer',
          digest: sha('e'),
          outcome: 'skipped',
        },
        { name: 'step 2: File "motd"', kind: 'customizer', digest: sha('f'), outcome: 'succeeded' },
        { name: 'step 3: File "motd"', kind: 'validator', outcome: 'succeeded' },
        { name: 'step 4: Shell "deprovision"', kind: 'deprovision step', outcome: 'failed' },
      ],
    });
  });

  it('refuses a document of another statement type, another predicate type, or without a predicate', () => {
    const statement = buildProvenance(INPUT) as Json;
    const refused = /not an in-toto statement with a SLSA provenance v1 predicate/;
    expect(() =>
      readProvenance(JSON.stringify({ ...statement, _type: 'https://in-toto.io/Statement/v0.1' })),
    ).toThrow(refused);
    expect(() =>
      readProvenance(JSON.stringify({ ...statement, predicateType: 'https://slsa.dev/provenance/v0.2' })),
    ).toThrow(refused);
    expect(() => readProvenance(JSON.stringify({ ...statement, predicate: undefined }))).toThrow(refused);
    expect(() => readProvenance(JSON.stringify({ predicate: statement.predicate }))).toThrow(refused);
    expect(() => readProvenance('{"_type": ')).toThrow(SyntaxError);
  });

  it('tolerates a record without the optional parts', () => {
    const minimal = { _type: STATEMENT_TYPE, predicateType: SLSA_PROVENANCE_V1, predicate: {} };
    expect(readProvenance(JSON.stringify(minimal))).toEqual({ versions: {}, artifacts: [], steps: [] });

    const sparse = {
      ...minimal,
      predicate: {
        buildDefinition: {
          externalParameters: { template: {} },
          resolvedDependencies: [{ name: 'install tools' }],
        },
        runDetails: {
          builder: { version: { packer: '1.11.2' } },
          byproducts: [{ name: 'run' }, { name: 'step 1: Shell "install tools"' }, {}],
        },
      },
    };
    expect(readProvenance(JSON.stringify(sparse))).toEqual({
      versions: { packer: '1.11.2' },
      template: {},
      artifacts: [{ step: 'install tools', uri: '', sha256: '' }],
      steps: [{ name: 'step 1: Shell "install tools"' }],
    });
  });
});
