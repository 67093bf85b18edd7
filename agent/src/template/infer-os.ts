/**
 * Decides whether the build VM runs Linux or Windows: from the steps (Shell means Linux, PowerShell,
 * WindowsRestart and WindowsUpdate mean Windows), then from the marketplace publisher, unless overridden.
 */
import { formatPath, type Problem } from '../errors.js';
import type { JsonObject, JsonValue } from './json-source.js';
import type { OsType } from './model.js';

const WINDOWS_STEPS = new Set(['PowerShell', 'WindowsRestart', 'WindowsUpdate']);
const WINDOWS_IMAGE = /windows|MicrosoftSQLServer|MicrosoftVisualStudio|MicrosoftDynamics/i;
const LINUX_IMAGE =
  /canonical|ubuntu|redhat|rhel|openlogic|centos|suse|sles|debian|credativ|almalinux|rocky|resf|kinvolk|flatcar|oracle|mariner|azurelinux|cbl-mariner/i;

export interface OsDecision {
  readonly os: OsType;
  readonly reason: string;
}

export function inferOs(
  properties: JsonObject,
  base: (string | number)[],
  override: OsType | undefined,
  problems: Problem[],
): OsDecision {
  const steps = [
    ...listSteps(properties.customize, [...base, 'customize']),
    ...listSteps(objectOf(properties.validate)?.inVMValidations, [...base, 'validate', 'inVMValidations']),
  ];
  const fromSteps = new Map<OsType, string>();
  for (const step of steps) {
    const os = stepOs(step.value);
    if (os && !fromSteps.has(os)) fromSteps.set(os, `${step.path} is ${describeStep(step.value)}`);
  }
  const fromImage = imageOs(objectOf(properties.source));

  let decision: OsDecision;
  if (override) decision = { os: override, reason: 'set with --os' };
  else if (fromSteps.size === 1) {
    const [os, why] = [...fromSteps][0]!;
    decision = { os, reason: why };
  } else if (fromSteps.size === 0 && fromImage) decision = fromImage;
  else if (fromSteps.size === 0) {
    problems.push({
      severity: 'warning',
      path: formatPath([...base, 'source']),
      message:
        'cannot tell whether the build VM runs Linux or Windows; assuming Linux. Pass --os windows if it is Windows.',
    });
    decision = { os: 'linux', reason: 'assumed (nothing in the template says)' };
  } else {
    problems.push({
      severity: 'error',
      path: formatPath([...base, 'customize']),
      message: `mixes Linux and Windows steps (${fromSteps.get('linux')}; ${fromSteps.get('windows')}); a build VM runs one OS.`,
    });
    return { os: 'linux', reason: 'conflicting steps' };
  }

  if (!override && fromImage && fromImage.os !== decision.os) {
    problems.push({
      severity: 'error',
      path: formatPath([...base, 'source']),
      message: `the source looks like ${label(fromImage.os)} (${fromImage.reason}) but ${decision.reason}, which needs ${label(decision.os)}. Fix the steps or the source, or pass --os to decide.`,
    });
  }
  for (const step of steps) {
    const os = stepOs(step.value);
    if (os && os !== decision.os && fromSteps.size === 1) {
      problems.push({
        severity: 'error',
        path: step.path,
        message: `${describeStep(step.value)} needs a ${label(os)} build VM, but this build is ${label(decision.os)} (${decision.reason}).`,
      });
    }
  }
  return decision;
}

function stepOs(step: JsonObject): OsType | undefined {
  const type = step.type;
  if (type === 'Shell') return 'linux';
  if (typeof type === 'string' && WINDOWS_STEPS.has(type)) return 'windows';
  if (type === 'File' && typeof step.destination === 'string') {
    if (/^[A-Za-z]:[\\/]/.test(step.destination)) return 'windows';
  }
  return undefined;
}

function describeStep(step: JsonObject): string {
  const name = typeof step.name === 'string' ? ` "${step.name}"` : '';
  return `a ${typeof step.type === 'string' ? step.type : '?'} step${name}`;
}

function imageOs(source: JsonObject | undefined): OsDecision | undefined {
  if (!source || source.type !== 'PlatformImage') return undefined;
  const text = ['publisher', 'offer', 'sku']
    .map((k) => (typeof source[k] === 'string' ? source[k] : ''))
    .join(' ');
  const image = `marketplace image ${JSON.stringify(source.publisher)}/${JSON.stringify(source.offer)}`;
  if (WINDOWS_IMAGE.test(text)) return { os: 'windows', reason: image };
  if (LINUX_IMAGE.test(text)) return { os: 'linux', reason: image };
  return undefined;
}

function label(os: OsType): string {
  return os === 'linux' ? 'Linux' : 'Windows';
}

function listSteps(
  value: JsonValue | undefined,
  base: (string | number)[],
): { value: JsonObject; path: string }[] {
  if (!Array.isArray(value)) return [];
  return value.flatMap((item, i) => {
    const step = objectOf(item);
    return step ? [{ value: step, path: formatPath([...base, i]) }] : [];
  });
}

function objectOf(value: JsonValue | undefined): JsonObject | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? value : undefined;
}
