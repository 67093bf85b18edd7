/**
 * Cross-field rules AIB enforces at submission (aib-reference §1.10) plus the ones that would make a
 * build wrong or impossible. Runs on the schema-checked copy, so field names and enums are canonical.
 */
import { formatPath, type Problem } from '../errors.js';
import { parseDuration } from '../duration.js';
import { hideUrlSecrets } from '../hide-query.js';
import { atLeast, type ApiVersion } from './api-versions.js';
import type { JsonObject, JsonValue } from './json-source.js';
import { splitSubnetId } from './resource-ids.js';

type Path = (string | number)[];

export interface ConstraintContext {
  readonly version: ApiVersion;
  readonly problems: Problem[];
  readonly unresolved: ReadonlySet<string>;
}

export function checkConstraints(properties: JsonObject, base: Path, ctx: ConstraintContext): void {
  const report = (severity: Problem['severity'], path: Path, message: string): void => {
    ctx.problems.push({ severity, path: formatPath([...base, ...path]), message });
  };
  // A field whose value failed schema checks is absent from `properties`, and an unresolved one (failed
  // expression, placeholder) is still its raw text: both already have an error, so rules skip them
  // rather than report the field as missing or its text as malformed.
  // Paths with an error from the schema check, collected once (a scan per lookup is quadratic).
  const failed = new Set(ctx.problems.filter((p) => p.severity === 'error').map((p) => p.path));
  const unusable: Unusable = (path) => {
    const where = formatPath([...base, ...path]);
    return ctx.unresolved.has(where) || failed.has(where);
  };

  const customize = arrayOf(properties.customize);
  customize.forEach((step, i) => checkStep(step, ['customize', i], report, unusable));
  const validate = objectOf(properties.validate);
  const validators = arrayOf(validate?.inVMValidations);
  validators.forEach((step, i) => checkStep(step, ['validate', 'inVMValidations', i], report, unusable));

  if (validate?.sourceValidationOnly === true) {
    if (customize.length > 0) {
      report(
        'error',
        ['validate', 'sourceValidationOnly'],
        'sourceValidationOnly validates the source image as it is, so "customize" must be empty; remove the customizers or set it to false.',
      );
    }
    if (validators.length === 0 && !unusable(['validate', 'inVMValidations'])) {
      report(
        'error',
        ['validate', 'sourceValidationOnly'],
        'sourceValidationOnly is true but validate.inVMValidations is empty, so there is nothing to run; add validators.',
      );
    }
  }

  const timeout = properties.buildTimeoutInMinutes;
  if (typeof timeout === 'number' && timeout >= 1 && timeout <= 5) {
    report(
      'error',
      ['buildTimeoutInMinutes'],
      `${timeout} minutes is too short: AIB accepts 0 (meaning 240) or 6 to 960 minutes.`,
    );
  }

  const imageVersionId = objectOf(properties.source)?.imageVersionId;
  if (
    typeof imageVersionId === 'string' &&
    /\/versions\/latest$/i.test(imageVersionId) &&
    !atLeast(ctx.version, '2022-07-01')
  ) {
    report(
      'error',
      ['source', 'imageVersionId'],
      `a source version of "latest" was introduced in API version 2022-07-01, but the template declares ${ctx.version}; pin a version such as 1.0.0 or raise apiVersion.`,
    );
  }

  checkDistribute(arrayOf(properties.distribute), ctx.version, report, unusable);
  checkVnet(objectOf(objectOf(properties.vmProfile)?.vnetConfig), report, unusable);
}

type Report = (severity: Problem['severity'], path: Path, message: string) => void;
type Unusable = (path: Path) => boolean;

/** Longest restartTimeout accepted: beyond this a typo is likelier than a real wait (Packer overflows at ~292 years). */
const MAX_RESTART_TIMEOUT_MS = 48 * 3_600_000;

function checkStep(step: JsonValue, path: Path, report: Report, unusable: Unusable): void {
  const s = objectOf(step);
  if (!s) return;
  const type = s.type;
  if (
    type === 'WindowsRestart' &&
    typeof s.restartTimeout === 'string' &&
    !unusable([...path, 'restartTimeout'])
  ) {
    const ms = parseDuration(s.restartTimeout);
    if (ms !== undefined && ms > MAX_RESTART_TIMEOUT_MS) {
      report(
        'error',
        [...path, 'restartTimeout'],
        `${s.restartTimeout} is longer than 48h; use a duration such as 15m or 2h.`,
      );
    }
  }
  if (type === 'Shell' || type === 'PowerShell') {
    const hasUri = typeof s.scriptUri === 'string';
    const hasInline = Array.isArray(s.inline);
    if (hasUri && hasInline) {
      report(
        'error',
        path,
        `a ${type} step takes either "scriptUri" or "inline", not both; split it into two steps.`,
      );
    } else if (!hasUri && !hasInline && !unusable([...path, 'scriptUri']) && !unusable([...path, 'inline'])) {
      report(
        'error',
        path,
        `a ${type} step needs "scriptUri" (a script to download) or "inline" (commands to run).`,
      );
    }
    if (hasInline && (s.inline as JsonValue[]).length === 0)
      report('error', [...path, 'inline'], 'lists no commands; add at least one or remove the step.');
    if (hasInline && typeof s.sha256Checksum === 'string' && s.sha256Checksum !== '') {
      report(
        'warning',
        [...path, 'sha256Checksum'],
        'is ignored for inline commands (there is nothing to download).',
      );
    }
    if (hasUri && !unusable([...path, 'scriptUri']))
      checkUri(s.scriptUri as string, [...path, 'scriptUri'], report);
  }
  if (
    type === 'PowerShell' &&
    s.runAsSystem === true &&
    s.runElevated !== true &&
    !unusable([...path, 'runElevated'])
  ) {
    report('error', [...path, 'runAsSystem'], 'runAsSystem requires "runElevated": true; set both.');
  }
  if (type === 'File') {
    if (typeof s.sourceUri === 'string' && !unusable([...path, 'sourceUri'])) {
      checkUri(s.sourceUri, [...path, 'sourceUri'], report);
      if (/\/$/.test(s.sourceUri.split('?')[0] ?? '')) {
        report(
          'error',
          [...path, 'sourceUri'],
          'points at a directory; a File step copies exactly one file. Zip the directory and expand it with a Shell or PowerShell step.',
        );
      }
    }
    if (
      typeof s.destination === 'string' &&
      !unusable([...path, 'destination']) &&
      !/^(\/|[A-Za-z]:[\\/])/.test(s.destination)
    ) {
      report(
        'error',
        [...path, 'destination'],
        `${JSON.stringify(s.destination)} must be an absolute path, such as /tmp/file or c:\\buildArtifacts\\file.`,
      );
    }
  }
  for (const [key, value] of Object.entries(s)) checkText(value, [...path, key], report);
}

const SCHEMES = new Set(['https:', 'http:', 'file:']);

function checkUri(uri: string, path: Path, report: Report): void {
  let parsed: URL;
  try {
    parsed = new URL(uri);
  } catch {
    report(
      'error',
      path,
      `${JSON.stringify(hideUrlSecrets(uri))} is not an absolute URL; use https://… (or file:// for local files).`,
    );
    return;
  }
  if (!SCHEMES.has(parsed.protocol)) {
    report(
      'error',
      path,
      `the ${parsed.protocol.replace(':', '')} scheme is not supported; use https, http or file.`,
    );
  }
}

/** NUL and unpaired surrogates cannot reach a script intact, so they are errors rather than surprises. */
function checkText(value: JsonValue, path: Path, report: Report): void {
  if (Array.isArray(value)) value.forEach((item, i) => checkText(item, [...path, i], report));
  if (typeof value !== 'string') return;
  if (value.includes('\u0000'))
    report('error', path, 'contains a NUL character, which no script or file path can carry; remove it.');
  if (!value.isWellFormed())
    report('error', path, 'contains invalid Unicode (an unpaired surrogate); fix the \\u escapes.');
}

function checkDistribute(
  distribute: JsonValue[],
  version: ApiVersion,
  report: Report,
  unusable: Unusable,
): void {
  const seen = new Map<string, number>();
  distribute.forEach((entry, i) => {
    const d = objectOf(entry);
    if (!d) return;
    const path: Path = ['distribute', i];
    if (typeof d.runOutputName === 'string') {
      const key = d.runOutputName.toLowerCase();
      const first = seen.get(key);
      if (first !== undefined) {
        report(
          'error',
          [...path, 'runOutputName'],
          `"${d.runOutputName}" is already used by distribute[${first}]; every runOutputName must be unique.`,
        );
      } else seen.set(key, i);
    }
    if (d.type !== 'SharedImage') return;
    const hasTargets = Array.isArray(d.targetRegions);
    const hasReplication = Array.isArray(d.replicationRegions);
    if (hasTargets && hasReplication) {
      report('error', path, 'use either "targetRegions" or the deprecated "replicationRegions", not both.');
    } else if (
      !hasTargets &&
      !hasReplication &&
      !unusable([...path, 'targetRegions']) &&
      !unusable([...path, 'replicationRegions'])
    ) {
      const wanted = atLeast(version, '2022-07-01') ? '"targetRegions"' : '"replicationRegions"';
      report(
        'error',
        path,
        `a SharedImage distributor needs ${wanted}: the regions to replicate the image version to.`,
      );
    }
    if (hasReplication && (d.replicationRegions as JsonValue[]).length === 0) {
      report('error', [...path, 'replicationRegions'], 'lists no regions; name at least one.');
    }
    if (d.storageAccountType !== undefined && !hasReplication && !unusable([...path, 'replicationRegions'])) {
      report(
        'error',
        [...path, 'storageAccountType'],
        'only applies together with "replicationRegions"; with targetRegions set storageAccountType on each region.',
      );
    }
    const names = new Set<string>();
    arrayOf(d.targetRegions).forEach((region, r) => {
      const name = objectOf(region)?.name;
      if (typeof name !== 'string') return;
      if (names.has(name.toLowerCase())) {
        report('error', [...path, 'targetRegions', r, 'name'], `the region "${name}" is listed twice.`);
      }
      names.add(name.toLowerCase());
    });
  });
}

function checkVnet(vnet: JsonObject | undefined, report: Report, unusable: Unusable): void {
  if (!vnet) return;
  const path: Path = ['vmProfile', 'vnetConfig'];
  const subnetId = typeof vnet.subnetId === 'string' ? vnet.subnetId : undefined;
  const aciSubnetId =
    typeof vnet.containerInstanceSubnetId === 'string' ? vnet.containerInstanceSubnetId : undefined;
  if (aciSubnetId !== undefined) {
    if (subnetId === undefined) {
      if (!unusable([...path, 'subnetId']))
        report(
          'error',
          [...path, 'containerInstanceSubnetId'],
          'requires "subnetId" as well: AIB does not support an ACI subnet on its own. Add the build VM subnet (same virtual network).',
        );
    } else {
      const build = splitSubnetId(subnetId);
      const aci = splitSubnetId(aciSubnetId);
      if (build && aci && build.vnet !== aci.vnet) {
        report(
          'error',
          [...path, 'containerInstanceSubnetId'],
          'must be in the same virtual network as subnetId.',
        );
      } else if (build && aci && build.subnet === aci.subnet) {
        report(
          'error',
          [...path, 'containerInstanceSubnetId'],
          'must be a different subnet from subnetId (delegated to Microsoft.ContainerInstance/containerGroups).',
        );
      }
    }
    if (typeof vnet.proxyVmSize === 'string' && vnet.proxyVmSize !== '') {
      report(
        'error',
        [...path, 'proxyVmSize'],
        'cannot be combined with containerInstanceSubnetId: that topology has no proxy VM. Remove proxyVmSize.',
      );
    }
  } else if (
    typeof vnet.proxyVmSize === 'string' &&
    vnet.proxyVmSize !== '' &&
    subnetId === undefined &&
    !unusable([...path, 'subnetId'])
  ) {
    report(
      'error',
      [...path, 'proxyVmSize'],
      'only applies with "subnetId" (the proxy VM sits in that subnet); add subnetId or remove proxyVmSize.',
    );
  }
}

function arrayOf(value: JsonValue | undefined): JsonValue[] {
  return Array.isArray(value) ? value : [];
}

function objectOf(value: JsonValue | undefined): JsonObject | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? value : undefined;
}
