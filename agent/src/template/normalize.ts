/** Applies AIB's documented defaults (aib-reference §1.3–1.8) to a checked template. */
import { formatPath } from '../errors.js';
import type { ApiVersion } from './api-versions.js';
import type { JsonObject, JsonValue } from './json-source.js';
import type { Distributor, ImageTemplate, OsType, Source, Step, Topology } from './model.js';

export const DEFAULT_BUILD_TIMEOUT_MINUTES = 240;
export const DEFAULT_RESTART_COMMAND = 'shutdown /r /f /t 0 /c "packer restart"';
export const DEFAULT_RESTART_TIMEOUT = '5m';
export const DEFAULT_UPDATE_LIMIT = 1000;
export const DEFAULT_SEARCH_CRITERIA = 'BrowseOnly=0 and IsInstalled=0';
export const DEFAULT_PROXY_VM_SIZE = 'Standard_A1_v2';

export interface NormalizeInput {
  readonly properties: JsonObject;
  readonly base: (string | number)[];
  readonly apiVersion: ApiVersion;
  readonly strict: boolean;
  readonly os: OsType;
  readonly osReason: string;
  readonly name?: string;
  readonly location?: string;
  readonly identity?: string;
  readonly secureValues: readonly string[];
}

export function normalizeTemplate(input: NormalizeInput): ImageTemplate {
  const p = input.properties;
  const vmProfile = obj(p.vmProfile);
  const vnetConfig = obj(vmProfile.vnetConfig);
  const validate = obj(p.validate);
  const errorHandling = obj(p.errorHandling);
  const source = toSource(obj(p.source));
  const vnet = {
    subnetId: optString(vnetConfig.subnetId),
    containerInstanceSubnetId: optString(vnetConfig.containerInstanceSubnetId),
    proxyVmSize:
      optString(vnetConfig.subnetId) && !optString(vnetConfig.containerInstanceSubnetId)
        ? optString(vnetConfig.proxyVmSize) || DEFAULT_PROXY_VM_SIZE
        : undefined,
  };
  const timeout = typeof p.buildTimeoutInMinutes === 'number' ? p.buildTimeoutInMinutes : 0;
  const osDisk =
    typeof vmProfile.osDiskSizeGB === 'number' && vmProfile.osDiskSizeGB > 0
      ? vmProfile.osDiskSizeGB
      : undefined;
  return {
    apiVersion: input.apiVersion,
    strict: input.strict,
    name: input.name,
    location: input.location,
    os: input.os,
    osReason: input.osReason,
    source,
    customize: list(p.customize).map((step, i) =>
      toStep(step, i, formatPath([...input.base, 'customize', i])),
    ),
    validate: {
      inVMValidations: list(validate.inVMValidations).map((step, i) =>
        toStep(step, i, formatPath([...input.base, 'validate', 'inVMValidations', i])),
      ),
      continueDistributeOnFailure: validate.continueDistributeOnFailure === true,
      sourceValidationOnly: validate.sourceValidationOnly === true,
    },
    distribute: list(p.distribute).map(toDistributor),
    buildTimeoutInMinutes: timeout === 0 ? DEFAULT_BUILD_TIMEOUT_MINUTES : timeout,
    vmSize: optString(vmProfile.vmSize) || defaultVmSize(source),
    ...(osDisk !== undefined ? { osDiskSizeGB: osDisk } : {}),
    vnet,
    topology: topologyOf(vnet.subnetId, vnet.containerInstanceSubnetId),
    errorHandling: {
      onCustomizerError: errorHandling.onCustomizerError === 'abort' ? 'abort' : 'cleanup',
      onValidationError: errorHandling.onValidationError === 'abort' ? 'abort' : 'cleanup',
    },
    identity: input.identity,
    secureValues: input.secureValues,
  };
}

export function topologyOf(subnetId: string | undefined, aciSubnetId: string | undefined): Topology {
  if (!subnetId) return 'direct';
  return aciSubnetId ? 'aci-subnet' : 'proxy';
}

/** AIB's default build VM size depends on the source's Hyper-V generation (aib-reference §1.8). */
function defaultVmSize(source: Source): string {
  if (source.type === 'PlatformImage' && /gen2|-g2$|_g2$|azure-edition|-gensecond/i.test(source.sku))
    return 'Standard_D2ds_v4';
  return 'Standard_D1_v2';
}

function toSource(s: JsonObject): Source {
  switch (s.type) {
    case 'ManagedImage':
      return { type: 'ManagedImage', imageId: str(s.imageId) };
    case 'SharedImageVersion':
      return { type: 'SharedImageVersion', imageVersionId: str(s.imageVersionId) };
    default: {
      const plan = obj(s.planInfo);
      return {
        type: 'PlatformImage',
        publisher: str(s.publisher),
        offer: str(s.offer),
        sku: str(s.sku),
        version: str(s.version) || 'latest',
        ...(s.planInfo
          ? {
              planInfo: {
                planName: str(plan.planName),
                planProduct: str(plan.planProduct),
                planPublisher: str(plan.planPublisher),
              },
            }
          : {}),
      };
    }
  }
}

function toStep(value: JsonValue, index: number, path: string): Step {
  const s = obj(value);
  const type = str(s.type);
  const hasUserName = typeof s.name === 'string' && s.name.trim() !== '';
  const base = { index, path, hasUserName, name: hasUserName ? str(s.name) : `${type} #${index + 1}` };
  const script = {
    ...(typeof s.scriptUri === 'string' ? { scriptUri: s.scriptUri } : {}),
    ...(Array.isArray(s.inline) ? { inline: s.inline.map(String) } : {}),
    sha256Checksum: str(s.sha256Checksum).toLowerCase(),
  };
  switch (type) {
    case 'PowerShell':
      return {
        ...base,
        type,
        ...script,
        runElevated: s.runElevated === true,
        runAsSystem: s.runAsSystem === true,
        validExitCodes:
          Array.isArray(s.validExitCodes) && s.validExitCodes.length > 0 ? s.validExitCodes.map(Number) : [0],
      };
    case 'File':
      return {
        ...base,
        type,
        sourceUri: str(s.sourceUri),
        destination: str(s.destination),
        sha256Checksum: script.sha256Checksum,
      };
    case 'WindowsRestart':
      return {
        ...base,
        type,
        restartCommand: str(s.restartCommand) || DEFAULT_RESTART_COMMAND,
        restartCheckCommand: str(s.restartCheckCommand),
        restartTimeout: str(s.restartTimeout) || DEFAULT_RESTART_TIMEOUT,
      };
    case 'WindowsUpdate':
      return {
        ...base,
        type,
        searchCriteria: str(s.searchCriteria) || DEFAULT_SEARCH_CRITERIA,
        filters: list(s.filters).map(String),
        updateLimit:
          typeof s.updateLimit === 'number' && s.updateLimit > 0 ? s.updateLimit : DEFAULT_UPDATE_LIMIT,
      };
    default:
      return { ...base, type: 'Shell', ...script };
  }
}

function toDistributor(value: JsonValue): Distributor {
  const d = obj(value);
  const runOutputName = str(d.runOutputName);
  switch (d.type) {
    case 'ManagedImage':
      return { type: 'ManagedImage', runOutputName, imageId: str(d.imageId), location: str(d.location) };
    case 'SharedImage': {
      const storage = str(d.storageAccountType) || 'Standard_LRS';
      const targetRegions = Array.isArray(d.targetRegions)
        ? d.targetRegions.map((r) => {
            const region = obj(r);
            return {
              name: str(region.name),
              replicaCount: typeof region.replicaCount === 'number' ? region.replicaCount : 1,
              storageAccountType: str(region.storageAccountType) || 'Standard_LRS',
            };
          })
        : list(d.replicationRegions).map((name) => ({
            name: str(name),
            replicaCount: 1,
            storageAccountType: storage,
          }));
      return {
        type: 'SharedImage',
        runOutputName,
        galleryImageId: str(d.galleryImageId),
        targetRegions,
        excludeFromLatest: d.excludeFromLatest === true,
      };
    }
    default:
      return {
        type: 'VHD',
        runOutputName,
        ...(typeof d.uri === 'string' && d.uri !== '' ? { uri: d.uri } : {}),
      };
  }
}

function obj(value: JsonValue | undefined): JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? value : {};
}

function list(value: JsonValue | undefined): JsonValue[] {
  return Array.isArray(value) ? value : [];
}

function str(value: JsonValue | undefined): string {
  return typeof value === 'string' ? value : '';
}

function optString(value: JsonValue | undefined): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}
