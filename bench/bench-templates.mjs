// The AIB image templates the benchmarks build: one imageTemplates resource (API 2024-02-01) around the given
// properties, with the identity and a source image of the given OS. Written to a file for `isobuild build`.
import { writeFileSync } from 'node:fs';

const IDENTITY =
  '/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/aib';

export const SOURCES = {
  linux: {
    type: 'PlatformImage',
    publisher: 'Canonical',
    offer: 'ubuntu-24_04-lts',
    sku: 'server',
    version: 'latest',
  },
  windows: {
    type: 'PlatformImage',
    publisher: 'MicrosoftWindowsServer',
    offer: 'WindowsServer',
    sku: '2022-datacenter-azure-edition',
    version: 'latest',
  },
};

/** The resource, with `properties` (customize, validate, …) and a VHD distribution target. */
export function imageTemplate(properties, os = 'linux') {
  return {
    type: 'Microsoft.VirtualMachineImages/imageTemplates',
    apiVersion: '2024-02-01',
    location: 'westeurope',
    identity: { type: 'UserAssigned', userAssignedIdentities: { [IDENTITY]: {} } },
    properties: { source: SOURCES[os], distribute: [{ type: 'VHD', runOutputName: 'vhd' }], ...properties },
  };
}

/** Writes the template to `file` and returns the path. */
export function writeTemplate(file, properties, os = 'linux') {
  writeFileSync(file, JSON.stringify(imageTemplate(properties, os)));
  return file;
}
