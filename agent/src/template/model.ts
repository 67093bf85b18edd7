/** The normalised image template every later stage works from: AIB's defaults applied, names canonical. */
import type { ApiVersion } from './api-versions.js';

export type OsType = 'linux' | 'windows';

/** How the agent reaches the build VM, as AIB derives it from vmProfile.vnetConfig (aib-reference §4). */
export type Topology = 'direct' | 'proxy' | 'aci-subnet';

export interface ScriptSource {
  readonly scriptUri?: string;
  readonly inline?: readonly string[];
  readonly sha256Checksum: string;
}

interface StepBase {
  /** Index within its list (customize or inVMValidations). */
  readonly index: number;
  /** The user's name, or a generated one such as "Shell #2" when the template gives none. */
  readonly name: string;
  readonly hasUserName: boolean;
  /** JSON path of the step in the source file, e.g. properties.customize[2]. */
  readonly path: string;
}

export type Step =
  | (StepBase & { readonly type: 'Shell' } & ScriptSource)
  | (StepBase & {
      readonly type: 'PowerShell';
      readonly runElevated: boolean;
      readonly runAsSystem: boolean;
      readonly validExitCodes: readonly number[];
    } & ScriptSource)
  | (StepBase & {
      readonly type: 'File';
      readonly sourceUri: string;
      readonly destination: string;
      readonly sha256Checksum: string;
    })
  | (StepBase & {
      readonly type: 'WindowsRestart';
      readonly restartCommand: string;
      readonly restartCheckCommand: string;
      readonly restartTimeout: string;
    })
  | (StepBase & {
      readonly type: 'WindowsUpdate';
      readonly searchCriteria: string;
      readonly filters: readonly string[];
      readonly updateLimit: number;
    });

export type Source =
  | {
      readonly type: 'PlatformImage';
      readonly publisher: string;
      readonly offer: string;
      readonly sku: string;
      readonly version: string;
      readonly planInfo?: {
        readonly planName: string;
        readonly planProduct: string;
        readonly planPublisher: string;
      };
    }
  | { readonly type: 'ManagedImage'; readonly imageId: string }
  | { readonly type: 'SharedImageVersion'; readonly imageVersionId: string };

export interface TargetRegion {
  readonly name: string;
  readonly replicaCount: number;
  readonly storageAccountType: string;
}

export type Distributor =
  | {
      readonly type: 'ManagedImage';
      readonly runOutputName: string;
      readonly imageId: string;
      readonly location: string;
    }
  | {
      readonly type: 'SharedImage';
      readonly runOutputName: string;
      readonly galleryImageId: string;
      readonly targetRegions: readonly TargetRegion[];
      readonly excludeFromLatest: boolean;
    }
  | { readonly type: 'VHD'; readonly runOutputName: string; readonly uri?: string };

export interface ImageTemplate {
  readonly apiVersion: ApiVersion;
  readonly strict: boolean;
  readonly name?: string;
  readonly location?: string;
  readonly os: OsType;
  /** Why isobuild believes the OS is what it is (shown by `validate`). */
  readonly osReason: string;
  readonly source: Source;
  readonly customize: readonly Step[];
  readonly validate: {
    readonly inVMValidations: readonly Step[];
    readonly continueDistributeOnFailure: boolean;
    readonly sourceValidationOnly: boolean;
  };
  readonly distribute: readonly Distributor[];
  /** Effective timeout: 0 in the template means AIB's default of 240 minutes. */
  readonly buildTimeoutInMinutes: number;
  readonly vmSize: string;
  readonly osDiskSizeGB?: number;
  readonly vnet: {
    readonly subnetId?: string;
    readonly containerInstanceSubnetId?: string;
    readonly proxyVmSize?: string;
  };
  readonly topology: Topology;
  readonly errorHandling: {
    readonly onCustomizerError: 'cleanup' | 'abort';
    readonly onValidationError: 'cleanup' | 'abort';
  };
  readonly identity?: string;
  /** Values (from securestring parameters) that must never be printed. */
  readonly secureValues: readonly string[];
}
