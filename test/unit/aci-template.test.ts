/**
 * docs/aci/isobuild-aci.json cannot be deployed here, so it is checked statically: valid JSON, every
 * parameter it references is declared and every declared one is used, the environment variables are ones
 * isobuild reads, secrets travel only as secure values or the secret volume, and the run never restarts.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { BUILD_ENVIRONMENT } from '../../agent/src/settings/settings-table.js';

interface Env {
  name: string;
  value?: string;
  secureValue?: string;
}
const text = readFileSync('docs/aci/isobuild-aci.json', 'utf8');
const template = JSON.parse(text) as {
  parameters: Record<string, { type: string }>;
  resources: {
    properties: {
      restartPolicy: string;
      subnetIds: { id: string }[];
      containers: { properties: { environmentVariables: Env[] } }[];
    };
  }[];
};
const group = template.resources[0]!;
const env = group.properties.containers[0]!.properties.environmentVariables;

describe('the ACI deployment template', () => {
  it('declares every parameter it references and references every one it declares', () => {
    const referenced = new Set([...text.matchAll(/parameters\('([^']+)'\)/g)].map((m) => m[1]));
    expect([...referenced].sort()).toEqual(Object.keys(template.parameters).sort());
  });

  it('sets only environment variables isobuild reads, secrets as secure values', () => {
    for (const variable of env.filter((e) => e.name.startsWith('ISOBUILD_')))
      expect(BUILD_ENVIRONMENT, variable.name).toContain(variable.name);
    const secure = Object.entries(template.parameters)
      .filter(([, p]) => p.type.toLowerCase() === 'securestring')
      .map(([name]) => name);
    for (const variable of env) {
      for (const name of secure) expect(variable.value ?? '').not.toContain(`parameters('${name}')`);
    }
    expect(env.find((e) => e.name === 'ISOBUILD_WINRM_PASSWORD')?.secureValue).toBeDefined();
  });

  it('runs once in the delegated ACI subnet with the managed identity for storage', () => {
    expect(group.properties.restartPolicy).toBe('Never');
    expect(group.properties.subnetIds[0]?.id).toBe("[parameters('aciSubnetId')]");
    expect(env.map((e) => e.name)).toEqual(
      expect.arrayContaining(['ISOBUILD_STORAGE_ACCOUNT_URL', 'AZURE_CLIENT_ID']),
    );
  });
});
