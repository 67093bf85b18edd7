/**
 * Small builders for image templates in the three shapes isobuild accepts (bare properties, ARM resource,
 * ARM deployment). Each returns a plain object; tests tweak it and JSON.stringify it with `templateText`,
 * which puts every value on its own line so problems can be checked against line numbers. `imageTemplate` and
 * `linuxTemplate` make the resource the build tests run (a VHD from an Ubuntu 24.04 or a Windows source).
 */

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonMap = { [key: string]: Json };

export const SUBSCRIPTION_ID = '11111111-2222-3333-4444-555555555555';
export const RESOURCE_GROUP = 'images-rg';
export const GROUP_ID = `/subscriptions/${SUBSCRIPTION_ID}/resourceGroups/${RESOURCE_GROUP}`;
export const IDENTITY_ID = `${GROUP_ID}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/aib-identity`;
export const OTHER_IDENTITY_ID = `${GROUP_ID}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/other-identity`;
export const MANAGED_IMAGE_ID = `${GROUP_ID}/providers/Microsoft.Compute/images/output-image`;
export const GALLERY_IMAGE_ID = `${GROUP_ID}/providers/Microsoft.Compute/galleries/gallery/images/definition`;
export const RESOURCE_TYPE = 'Microsoft.VirtualMachineImages/imageTemplates';

export function subnetId(vnet = 'build-vnet', subnet = 'build-subnet'): string {
  return `${GROUP_ID}/providers/Microsoft.Network/virtualNetworks/${vnet}/subnets/${subnet}`;
}

export const UBUNTU_SOURCE: JsonMap = {
  type: 'PlatformImage',
  publisher: 'Canonical',
  offer: '0001-com-ubuntu-server-jammy',
  sku: '22_04-lts',
  version: 'latest',
};

export const WINDOWS_SOURCE: JsonMap = {
  type: 'PlatformImage',
  publisher: 'MicrosoftWindowsServer',
  offer: 'WindowsServer',
  sku: '2022-datacenter',
  version: 'latest',
};

export function shellStep(...inline: string[]): JsonMap {
  return { type: 'Shell', inline: inline.length > 0 ? inline : ['echo hello'] };
}

export function powerShellStep(...inline: string[]): JsonMap {
  return { type: 'PowerShell', inline: inline.length > 0 ? inline : ['Write-Output hello'] };
}

export function managedImageDistributor(runOutputName = 'output'): JsonMap {
  return { type: 'ManagedImage', imageId: MANAGED_IMAGE_ID, location: 'westus2', runOutputName };
}

/**
 * A valid Linux `properties` object. Keys in `overrides` replace the defaults; a key set to undefined is removed.
 */
export function properties(overrides: { [key: string]: Json | undefined } = {}): JsonMap {
  return withOverrides(
    {
      source: UBUNTU_SOURCE,
      customize: [shellStep()],
      distribute: [managedImageDistributor()],
    },
    overrides,
  );
}

/** An imageTemplates resource (the shape `az resource create` and the portal use), strict API version by default. */
export function resource(
  props: Json = properties(),
  overrides: { [key: string]: Json | undefined } = {},
): JsonMap {
  return withOverrides(
    {
      type: RESOURCE_TYPE,
      apiVersion: '2024-02-01',
      name: 'image-template',
      location: 'westus2',
      identity: identity(),
      properties: props,
    },
    overrides,
  );
}

export function identity(...ids: string[]): JsonMap {
  const list = ids.length > 0 ? ids : [IDENTITY_ID];
  return { type: 'UserAssigned', userAssignedIdentities: Object.fromEntries(list.map((id) => [id, {}])) };
}

/** An ARM deployment template around the given resources. */
export function deployment(
  resources: Json[],
  sections: { parameters?: JsonMap; variables?: JsonMap } = {},
): JsonMap {
  return {
    $schema: 'https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#',
    contentVersion: '1.0.0.0',
    ...(sections.parameters ? { parameters: sections.parameters } : {}),
    ...(sections.variables ? { variables: sections.variables } : {}),
    resources,
  };
}

/** The identity, sources and resource the build tests use. */
export const BUILD_IDENTITY_ID = `/subscriptions/${SUBSCRIPTION_ID}/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/aib`;

export const LINUX_BUILD_SOURCE: JsonMap = {
  type: 'PlatformImage',
  publisher: 'Canonical',
  offer: 'ubuntu-24_04-lts',
  sku: 'server',
  version: 'latest',
};

export const WINDOWS_BUILD_SOURCE: JsonMap = {
  type: 'PlatformImage',
  publisher: 'MicrosoftWindowsServer',
  offer: 'WindowsServer',
  sku: '2022-datacenter-azure-edition',
  version: 'latest',
};

/** An imageTemplates resource (API 2024-02-01, westeurope) building a VHD from `source` with `props`. */
export function imageTemplate(props: Record<string, unknown>, source: object = LINUX_BUILD_SOURCE): JsonMap {
  return resource({ source, distribute: [{ type: 'VHD', runOutputName: 'vhd' }], ...props } as JsonMap, {
    name: undefined,
    location: 'westeurope',
    identity: identity(BUILD_IDENTITY_ID),
  });
}

/** An imageTemplates resource (API 2024-02-01) for a Linux build with the given properties. */
export function linuxTemplate(props: Record<string, unknown>): JsonMap {
  return imageTemplate(props);
}

/** Pretty-printed JSON: one value per line, so line numbers in problems are meaningful. */
export function templateText(value: Json): string {
  return JSON.stringify(value, null, 2);
}

/** The 1-based line on which `needle` first appears in `text`. */
export function lineOf(text: string, needle: string): number {
  const index = text.indexOf(needle);
  if (index < 0) throw new Error(`${needle} does not occur in the text`);
  return text.slice(0, index).split('\n').length;
}

function withOverrides(base: JsonMap, overrides: { [key: string]: Json | undefined }): JsonMap {
  const out: JsonMap = { ...base };
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) delete out[key];
    else out[key] = value;
  }
  return out;
}
