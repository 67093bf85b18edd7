/**
 * The shape of `Microsoft.VirtualMachineImages/imageTemplates` across API versions (aib-reference §1.3–1.8),
 * as data: types, enums, patterns, ranges and the version that introduced each field. The walker in
 * check-schema.ts interprets it; cross-field rules (§1.10) live in check-constraints.ts.
 */
import type { ApiVersion } from './api-versions.js';

export type ResourceIdKind =
  | 'managedImage'
  | 'galleryImage'
  | 'galleryImageVersion'
  | 'subnet'
  | 'userAssignedIdentity'
  | 'resourceGroup';

export type Spec =
  | {
      kind: 'string';
      pattern?: RegExp;
      patternHint?: string;
      enum?: readonly EnumValue[];
      resourceId?: ResourceIdKind;
    }
  | { kind: 'int'; min?: number; max?: number }
  | { kind: 'bool' }
  | { kind: 'stringMap' }
  | { kind: 'identityMap' }
  | { kind: 'array'; items: Spec; minItems?: number }
  | { kind: 'object'; fields: Readonly<Record<string, Field>> }
  | { kind: 'union'; discriminator: string; what: string; variants: Readonly<Record<string, Variant>> }
  | { kind: 'any' };

export interface EnumValue {
  readonly value: string;
  readonly since?: ApiVersion;
}

export interface Field {
  readonly spec: Spec;
  readonly required?: boolean;
  readonly since?: ApiVersion;
  readonly readOnly?: boolean;
  /** Shown as a warning when the field is used at or after `deprecatedSince`. */
  readonly deprecated?: { readonly since: ApiVersion; readonly advice: string };
}

export interface Variant {
  readonly since?: ApiVersion;
  /** A variant that no stable version accepts (e.g. the ISO source of the 2019 previews). */
  readonly removed?: string;
  readonly fields: Readonly<Record<string, Field>>;
}

const str = (extra: Omit<Extract<Spec, { kind: 'string' }>, 'kind'> = {}): Spec => ({
  kind: 'string',
  ...extra,
});
/** AIB's integers are int32; Windows exit codes are unsigned 32-bit. */
const INT32 = { min: -2_147_483_648, max: 2_147_483_647 };
const int = (min = INT32.min, max = INT32.max): Spec => ({ kind: 'int', min, max });
const bool: Spec = { kind: 'bool' };
const stringList: Spec = { kind: 'array', items: str() };
const enumOf = (...values: (string | EnumValue)[]): Spec =>
  str({ enum: values.map((v) => (typeof v === 'string' ? { value: v } : v)) });
const f = (spec: Spec, options: Omit<Field, 'spec'> = {}): Field => ({ spec, ...options });
const obj = (fields: Record<string, Field>): Spec => ({ kind: 'object', fields });

export const NAME_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;
const nameSpec = str({ pattern: NAME_PATTERN, patternHint: '1–64 letters, digits, -, _ or .' });
const SHA256_PATTERN = /^([0-9a-fA-F]{64})?$/;
const checksum = f(str({ pattern: SHA256_PATTERN, patternHint: '64 hexadecimal digits (sha256sum), or ""' }));
/** Go-style durations as AIB accepts them: 5m, 90s, 1h30m. */
export const DURATION_PATTERN = /^(\d+(\.\d+)?(h|m|s|ms))+$/;

const scriptFields = {
  name: f(str()),
  scriptUri: f(str()),
  sha256Checksum: checksum,
  inline: f(stringList),
};
const powerShellFields = {
  ...scriptFields,
  runElevated: f(bool),
  runAsSystem: f(bool),
  validExitCodes: f({ kind: 'array', items: int(INT32.min, 4_294_967_295) }),
};
const fileFields = {
  name: f(str()),
  sourceUri: f(str(), { required: true }),
  sha256Checksum: checksum,
  destination: f(str(), { required: true }),
};

const customizer: Spec = {
  kind: 'union',
  discriminator: 'type',
  what: 'customizer',
  variants: {
    Shell: { fields: scriptFields },
    PowerShell: { fields: powerShellFields },
    File: { fields: fileFields },
    WindowsRestart: {
      fields: {
        name: f(str()),
        restartCommand: f(str()),
        restartCheckCommand: f(str()),
        restartTimeout: f(
          str({ pattern: DURATION_PATTERN, patternHint: 'a duration such as 5m, 90s or 1h30m' }),
        ),
      },
    },
    WindowsUpdate: {
      fields: {
        name: f(str()),
        searchCriteria: f(str()),
        filters: f(stringList),
        updateLimit: f(int(0)),
      },
    },
  },
};

const validator: Spec = {
  kind: 'union',
  discriminator: 'type',
  what: 'validator',
  variants: {
    Shell: { fields: scriptFields },
    PowerShell: { fields: powerShellFields },
    File: { since: '2022-07-01', fields: fileFields },
  },
};

const planInfo = obj({
  planName: f(str(), { required: true }),
  planProduct: f(str(), { required: true }),
  planPublisher: f(str(), { required: true }),
});

const source: Spec = {
  kind: 'union',
  discriminator: 'type',
  what: 'source',
  variants: {
    PlatformImage: {
      fields: {
        publisher: f(str(), { required: true }),
        offer: f(str(), { required: true }),
        sku: f(str(), { required: true }),
        version: f(str(), { required: true }),
        planInfo: f(planInfo, { since: '2020-02-14' }),
        exactVersion: f(str(), { readOnly: true }),
      },
    },
    ManagedImage: { fields: { imageId: f(str({ resourceId: 'managedImage' }), { required: true }) } },
    SharedImageVersion: {
      since: '2020-02-14',
      fields: {
        imageVersionId: f(str({ resourceId: 'galleryImageVersion' }), { required: true }),
        exactVersion: f(str(), { readOnly: true, since: '2022-07-01' }),
      },
    },
    ISO: {
      removed:
        'ISO sources existed only in the 2019 previews and stopped being processed in April 2020; use a PlatformImage (e.g. RHEL BYOS) instead',
      fields: { sourceURI: f(str()), sha256Checksum: checksum },
    },
  },
};

const storageAccountType = enumOf('Standard_LRS', 'Standard_ZRS', {
  value: 'Premium_LRS',
  since: '2022-07-01',
});

const distributeCommon = {
  runOutputName: f(nameSpec, { required: true }),
  artifactTags: f({ kind: 'stringMap' }),
};

const distributor: Spec = {
  kind: 'union',
  discriminator: 'type',
  what: 'distributor',
  variants: {
    ManagedImage: {
      fields: {
        ...distributeCommon,
        imageId: f(str({ resourceId: 'managedImage' }), { required: true }),
        location: f(str(), { required: true }),
      },
    },
    SharedImage: {
      fields: {
        ...distributeCommon,
        galleryImageId: f(str({ resourceId: 'galleryImage' }), { required: true }),
        targetRegions: f(
          {
            kind: 'array',
            minItems: 1,
            items: obj({
              name: f(str(), { required: true }),
              replicaCount: f(int(1)),
              storageAccountType: f(storageAccountType),
            }),
          },
          { since: '2022-07-01' },
        ),
        replicationRegions: f(stringList, {
          deprecated: { since: '2022-07-01', advice: 'use targetRegions instead' },
        }),
        storageAccountType: f(storageAccountType),
        excludeFromLatest: f(bool),
        versioning: f(
          {
            kind: 'union',
            discriminator: 'scheme',
            what: 'versioning scheme',
            variants: { Latest: { fields: { major: f(int(-1)) } }, Source: { fields: {} } },
          },
          { since: '2022-07-01' },
        ),
        replicationMode: f(enumOf('Full', 'Shallow'), { since: '2025-10-01' }),
      },
    },
    VHD: { fields: { ...distributeCommon, uri: f(str(), { since: '2022-07-01' }) } },
  },
};

const enabledState = obj({ state: f(enumOf('Enabled', 'Disabled'), { required: true }) });
const onError = enumOf('cleanup', 'abort');

export const PROPERTIES_SPEC: Spec = obj({
  source: f(source, { required: true }),
  customize: f({ kind: 'array', items: customizer }),
  optimize: f(
    obj({
      vmBoot: f(enabledState),
      workload: f(
        obj({
          state: f(enumOf('Enabled', 'Disabled'), { required: true }),
          scriptUri: f(str()),
          sha256Checksum: checksum,
        }),
        { since: '2025-10-01' },
      ),
    }),
    { since: '2022-07-01' },
  ),
  validate: f(
    obj({
      continueDistributeOnFailure: f(bool),
      sourceValidationOnly: f(bool),
      inVMValidations: f({ kind: 'array', items: validator }),
    }),
    { since: '2022-02-14' },
  ),
  distribute: f({ kind: 'array', items: distributor, minItems: 1 }, { required: true }),
  errorHandling: f(obj({ onCustomizerError: f(onError), onValidationError: f(onError) }), {
    since: '2023-07-01',
  }),
  buildTimeoutInMinutes: f(int(0, 960)),
  vmProfile: f(
    obj({
      vmSize: f(str()),
      osDiskSizeGB: f(int(0)),
      userAssignedIdentities: f(
        { kind: 'array', items: str({ resourceId: 'userAssignedIdentity' }) },
        { since: '2021-10-01' },
      ),
      vnetConfig: f(
        obj({
          subnetId: f(str({ resourceId: 'subnet' })),
          containerInstanceSubnetId: f(str({ resourceId: 'subnet' }), { since: '2024-02-01' }),
          proxyVmSize: f(str(), { since: '2021-10-01' }),
        }),
      ),
    }),
  ),
  stagingResourceGroup: f(str({ resourceId: 'resourceGroup' }), { since: '2022-02-14' }),
  exactStagingResourceGroup: f(str(), { readOnly: true, since: '2022-02-14' }),
  autoRun: f(enabledState, { since: '2024-02-01' }),
  managedResourceTags: f({ kind: 'stringMap' }, { since: '2024-02-01' }),
  additionalDataDisks: f(
    { kind: 'array', items: obj({ sizeGB: f(int(1), { required: true }) }) },
    { since: '2025-10-01' },
  ),
  provisioningState: f({ kind: 'any' }, { readOnly: true }),
  provisioningError: f({ kind: 'any' }, { readOnly: true }),
  lastRunStatus: f({ kind: 'any' }, { readOnly: true }),
});

export const IDENTITY_SPEC: Spec = obj({
  type: f(enumOf('UserAssigned', 'None'), { required: true }),
  userAssignedIdentities: f({ kind: 'identityMap' }),
  principalId: f(str(), { readOnly: true }),
  tenantId: f(str(), { readOnly: true }),
});

/** Fields that may contain `<` legitimately (shell redirections, PowerShell), so are not scanned for placeholders. */
export const SCRIPT_TEXT_FIELDS = new Set([
  'inline',
  'filters',
  'searchCriteria',
  'restartCommand',
  'restartCheckCommand',
]);
