/**
 * The provenance record of a run: an in-toto Statement (v1) with a SLSA Provenance (v1) predicate. Its
 * subjects are what the run produced that can be hashed (the SBOM and the build bundle); it says what went
 * in (the template file, every artifact as fetched, with URI rewrites shown), who built it (isobuild and
 * Packer, by version), how the VM was reached, and what each step did. The caller masks the text.
 */

export const STATEMENT_TYPE = 'https://in-toto.io/Statement/v1';
export const SLSA_PROVENANCE_V1 = 'https://slsa.dev/provenance/v1';
/** What kind of build this is: an AIB image template customizing an existing VM through Packer. */
export const BUILD_TYPE = 'https://github.com/isobuild/isobuild/build-types/aib-image-template/v1';
export const BUILDER_ID = 'https://github.com/isobuild/isobuild';

export interface HashedFile {
  readonly name: string;
  readonly sha256: string;
}

export interface ProvenanceArtifact {
  readonly step: string;
  /** The URI in the template (its query string, a SAS, hidden). */
  readonly uri: string;
  /** What was fetched after --rewrite-uri (equal to uri when not rewritten). */
  readonly fetchedFrom: string;
  readonly sha256: string;
  readonly bytes: number;
  /** Whether the template's sha256Checksum was checked. */
  readonly checksumVerified: boolean;
}

export interface ProvenanceStep {
  readonly position: number;
  readonly kind: 'customizer' | 'validator' | 'deprovision step';
  readonly name: string;
  readonly type: string;
  readonly outcome: string;
  readonly durationMs?: number;
  /** sha256 of what the step ran (its rendered provisioner and its artifact). */
  readonly digest?: string;
  /** A step a resumed run skipped: the run in which it was done. */
  readonly doneIn?: string;
}

export interface ProvenanceInput {
  readonly runId: string;
  readonly runState: string;
  readonly startedOn: string;
  readonly finishedOn: string;
  readonly template: {
    readonly file: string;
    readonly sha256: string;
    readonly name?: string;
    readonly apiVersion: string;
    readonly parameterFile?: HashedFile;
  };
  readonly os: 'linux' | 'windows';
  readonly topology: 'direct' | 'proxy';
  /** How the run reached the VM, e.g. "proxy 10.0.0.5:60001 to 10.0.0.4:22". */
  readonly hop: string;
  readonly versions: { readonly isobuild: string; readonly packer: string };
  readonly artifacts: readonly ProvenanceArtifact[];
  readonly steps: readonly ProvenanceStep[];
  readonly subjects: readonly HashedFile[];
  readonly resumedFrom?: { readonly runId: string; readonly fromStep: number };
}

/** The statement, as a plain object: JSON.stringify it. */
export function buildProvenance(input: ProvenanceInput): object {
  return {
    _type: STATEMENT_TYPE,
    subject: input.subjects.map((s) => ({ name: s.name, digest: { sha256: s.sha256 } })),
    predicateType: SLSA_PROVENANCE_V1,
    predicate: {
      buildDefinition: {
        buildType: BUILD_TYPE,
        externalParameters: {
          template: {
            path: input.template.file,
            digest: { sha256: input.template.sha256 },
            ...(input.template.name ? { name: input.template.name } : {}),
            apiVersion: input.template.apiVersion,
            ...(input.template.parameterFile
              ? {
                  parameterFile: {
                    path: input.template.parameterFile.name,
                    digest: { sha256: input.template.parameterFile.sha256 },
                  },
                }
              : {}),
          },
          os: input.os,
          ...(input.resumedFrom ? { resumedFrom: input.resumedFrom } : {}),
        },
        internalParameters: { topology: input.topology, hop: input.hop },
        resolvedDependencies: input.artifacts.map((a) => ({
          uri: a.fetchedFrom,
          digest: { sha256: a.sha256 },
          name: a.step,
          annotations: {
            templateUri: a.uri,
            rewritten: a.uri !== a.fetchedFrom,
            bytes: a.bytes,
            checksumVerified: a.checksumVerified,
          },
        })),
      },
      runDetails: {
        builder: {
          id: BUILDER_ID,
          version: { isobuild: input.versions.isobuild, packer: input.versions.packer },
        },
        metadata: {
          invocationId: input.runId,
          startedOn: input.startedOn,
          finishedOn: input.finishedOn,
        },
        // Each step as it ran: SLSA's byproducts are resource descriptors, so a step is one by name.
        // A resource descriptor needs a uri, digest or content: the run and its steps are named by a uri.
        byproducts: [
          { name: 'run', uri: `isobuild:run/${input.runId}`, annotations: { runState: input.runState } },
          ...input.steps.map((step) => ({
            name: `step ${step.position}: ${step.type} ${JSON.stringify(step.name)}`,
            uri: `isobuild:run/${input.runId}/step/${step.position}`,
            ...(step.digest ? { digest: { sha256: step.digest } } : {}),
            annotations: {
              kind: step.kind,
              outcome: step.outcome,
              ...(step.durationMs !== undefined ? { durationMs: step.durationMs } : {}),
              ...(step.doneIn ? { doneIn: step.doneIn } : {}),
            },
          })),
        ],
      },
    },
  };
}

/** What `isobuild diff` compares of a provenance record. */
export interface ProvenanceFacts {
  readonly versions: { readonly isobuild?: string; readonly packer?: string };
  readonly template?: { readonly path?: string; readonly sha256?: string };
  /** By step name: what was fetched and its sha256. */
  readonly artifacts: readonly { readonly step: string; readonly uri: string; readonly sha256: string }[];
  readonly steps: readonly {
    readonly name: string;
    readonly kind?: string;
    readonly digest?: string;
    readonly outcome?: string;
  }[];
}

/** Reads back a record this module wrote; throws when the text is not one. */
export function readProvenance(text: string): ProvenanceFacts {
  const doc = JSON.parse(text) as {
    _type?: string;
    predicateType?: string;
    predicate?: {
      buildDefinition?: {
        externalParameters?: { template?: { path?: string; digest?: { sha256?: string } } };
        resolvedDependencies?: { uri?: string; name?: string; digest?: { sha256?: string } }[];
      };
      runDetails?: {
        builder?: { version?: { isobuild?: string; packer?: string } };
        byproducts?: {
          name?: string;
          digest?: { sha256?: string };
          annotations?: { outcome?: string; kind?: string };
        }[];
      };
    };
  };
  if (doc._type !== STATEMENT_TYPE || doc.predicateType !== SLSA_PROVENANCE_V1 || !doc.predicate)
    throw new Error('not an in-toto statement with a SLSA provenance v1 predicate');
  const { buildDefinition, runDetails } = doc.predicate;
  const template = buildDefinition?.externalParameters?.template;
  return {
    versions: runDetails?.builder?.version ?? {},
    ...(template
      ? {
          template: {
            ...(template.path ? { path: template.path } : {}),
            ...(template.digest?.sha256 ? { sha256: template.digest.sha256 } : {}),
          },
        }
      : {}),
    artifacts: (buildDefinition?.resolvedDependencies ?? []).map((d) => ({
      step: d.name ?? '',
      uri: d.uri ?? '',
      sha256: d.digest?.sha256 ?? '',
    })),
    steps: (runDetails?.byproducts ?? [])
      .filter((b) => b.name?.startsWith('step '))
      .map((b) => ({
        name: b.name ?? '',
        ...(b.digest?.sha256 ? { digest: b.digest.sha256 } : {}),
        ...(b.annotations?.outcome ? { outcome: b.annotations.outcome } : {}),
        ...(b.annotations?.kind ? { kind: b.annotations.kind } : {}),
      })),
  };
}
