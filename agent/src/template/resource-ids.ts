/** Checks the shape of the Azure resource IDs an image template refers to (case-insensitive, as ARM is). */
import type { ResourceIdKind } from './schema.js';

const GUID = '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}';
const SEGMENT = '[^/?#<>%&:\\\\]+';
const GROUP = `/subscriptions/(${GUID})/resourceGroups/(${SEGMENT})`;
const VERSION = '(\\d+\\.\\d+\\.\\d+|latest)';

const SHAPES: Record<ResourceIdKind, { pattern: RegExp; example: string }> = {
  managedImage: {
    pattern: new RegExp(`^${GROUP}/providers/Microsoft\\.Compute/images/${SEGMENT}$`, 'i'),
    example: '/subscriptions/<guid>/resourceGroups/<rg>/providers/Microsoft.Compute/images/<image>',
  },
  galleryImage: {
    pattern: new RegExp(
      `^${GROUP}/providers/Microsoft\\.Compute/galleries/${SEGMENT}/images/${SEGMENT}(/versions/\\d+\\.\\d+\\.\\d+)?$`,
      'i',
    ),
    example:
      '/subscriptions/<guid>/resourceGroups/<rg>/providers/Microsoft.Compute/galleries/<gallery>/images/<definition>',
  },
  galleryImageVersion: {
    pattern: new RegExp(
      `^(${GROUP}/providers/Microsoft\\.Compute/galleries/${SEGMENT}|/subscriptions/${GUID}/providers/Microsoft\\.Compute/locations/${SEGMENT}/sharedGalleries/${SEGMENT})/images/${SEGMENT}/versions/${VERSION}$`,
      'i',
    ),
    example:
      '/subscriptions/<guid>/resourceGroups/<rg>/providers/Microsoft.Compute/galleries/<gallery>/images/<definition>/versions/<1.2.3>',
  },
  subnet: {
    pattern: new RegExp(
      `^${GROUP}/providers/Microsoft\\.Network/virtualNetworks/${SEGMENT}/subnets/${SEGMENT}$`,
      'i',
    ),
    example:
      '/subscriptions/<guid>/resourceGroups/<rg>/providers/Microsoft.Network/virtualNetworks/<vnet>/subnets/<subnet>',
  },
  userAssignedIdentity: {
    pattern: new RegExp(
      `^${GROUP}/providers/Microsoft\\.ManagedIdentity/userAssignedIdentities/${SEGMENT}$`,
      'i',
    ),
    example:
      '/subscriptions/<guid>/resourceGroups/<rg>/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>',
  },
  resourceGroup: {
    pattern: new RegExp(`^${GROUP}$`, 'i'),
    example: '/subscriptions/<guid>/resourceGroups/<name>',
  },
};

/** A sentence describing what is wrong with `id`, or undefined when it has the right shape. */
export function resourceIdProblem(id: string, kind: ResourceIdKind): string | undefined {
  const shape = SHAPES[kind];
  if (shape.pattern.test(id)) return undefined;
  const shown = JSON.stringify(id.length > 120 ? `${id.slice(0, 120)}…` : id);
  const subscription = /^\/subscriptions\/([^/]+)/i.exec(id)?.[1];
  const why =
    subscription !== undefined && !new RegExp(`^${GUID}$`).test(subscription)
      ? ` (the subscription "${subscription}" is not a GUID)`
      : '';
  return `${shown} is not a ${describeKind(kind)} resource ID${why}; expected ${shape.example}.`;
}

/** Splits a subnet ID into its virtual network ID and subnet name (lower-cased for comparison). */
export function splitSubnetId(id: string): { vnet: string; subnet: string } | undefined {
  const match = /^(.*\/virtualNetworks\/[^/]+)\/subnets\/([^/]+)$/i.exec(id);
  return match ? { vnet: match[1]!.toLowerCase(), subnet: match[2]!.toLowerCase() } : undefined;
}

function describeKind(kind: ResourceIdKind): string {
  const names: Record<ResourceIdKind, string> = {
    managedImage: 'managed image',
    galleryImage: 'gallery image definition (or version)',
    galleryImageVersion: 'gallery image version',
    subnet: 'subnet',
    userAssignedIdentity: 'user-assigned identity',
    resourceGroup: 'resource group',
  };
  return names[kind];
}
