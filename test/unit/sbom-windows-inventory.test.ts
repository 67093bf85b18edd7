/**
 * Reading the Windows inventory script's output as Windows PowerShell 5.1 prints it (CRLF, profile noise,
 * `ConvertTo-Json -Compress` escaping), and its quirks: bare objects for one-item lists, null fields,
 * duplicate Uninstall entries, the `{"value":…,"Count":…}` wrapper.
 */
import { describe, expect, it } from 'vitest';
import {
  parseWindowsInventory,
  WINDOWS_INVENTORY_MARKER,
  WINDOWS_INVENTORY_SCRIPT,
} from '../../agent/src/sbom/windows-inventory.js';

const AT = '2026-01-01T00:00:00.000Z';

/** The script's stdout: whatever a profile printed, the marker, the JSON; CRLF as on Windows. */
function output(json: string, before: readonly string[] = []): string {
  return [...before, WINDOWS_INVENTORY_MARKER, json, ''].join('\r\n');
}

const SERVER_2022 =
  '{"os":{"caption":"Microsoft Windows Server 2022 Datacenter ","version":"10.0.20348","build":"20348"},' +
  '"programs":[' +
  '{"name":"Microsoft Edge","version":"131.0.2903.70","publisher":"Microsoft Corporation","arch":"x86"},' +
  '{"name":"7-Zip 24.08 (x64)","version":"24.08","publisher":"Igor Pavlov","arch":"x64"},' +
  '{"name":"Microsoft Visual C++ 2015-2022 Redistributable (x64) - 14.40.33810","version":"14.40.33810.0","publisher":"Microsoft Corporation","arch":"x64"},' +
  '{"name":"AT\\u0026T Tool \\u0027beta\\u0027","version":"","publisher":"","arch":"x64"}' +
  '],' +
  '"hotfixes":["KB5044281","KB5012170","KB5045934"]}';

describe('parseWindowsInventory', () => {
  const inventory = parseWindowsInventory(output(SERVER_2022, ['Loading personal profile...', '']), AT);

  it('reads the OS caption, version and build', () => {
    expect(inventory.os).toEqual({
      id: 'windows',
      name: 'Microsoft Windows Server 2022 Datacenter',
      version: '10.0.20348',
      build: '20348',
    });
    expect(inventory.collectedAt).toBe(AT);
  });

  it('maps programs (arch, publisher) and hotfixes (the KB id, no version), without purls, sorted', () => {
    expect(inventory.packages).toEqual([
      { kind: 'windows-hotfix', name: 'KB5012170', version: '' },
      { kind: 'windows-hotfix', name: 'KB5044281', version: '' },
      { kind: 'windows-hotfix', name: 'KB5045934', version: '' },
      {
        kind: 'windows-program',
        name: '7-Zip 24.08 (x64)',
        version: '24.08',
        arch: 'x64',
        publisher: 'Igor Pavlov',
      },
      { kind: 'windows-program', name: "AT&T Tool 'beta'", version: '', arch: 'x64' },
      {
        kind: 'windows-program',
        name: 'Microsoft Edge',
        version: '131.0.2903.70',
        arch: 'x86',
        publisher: 'Microsoft Corporation',
      },
      {
        kind: 'windows-program',
        name: 'Microsoft Visual C++ 2015-2022 Redistributable (x64) - 14.40.33810',
        version: '14.40.33810.0',
        arch: 'x64',
        publisher: 'Microsoft Corporation',
      },
    ]);
  });

  it('takes a single program as an object and a single hotfix as a string', () => {
    const single = parseWindowsInventory(
      output(
        '{"os":{"caption":"Microsoft Windows 11 Pro","version":"10.0.26100","build":"26100"},' +
          '"programs":{"name":"Git","version":"2.47.1","publisher":"The Git Development Community","arch":"x64"},' +
          '"hotfixes":"KB5048667"}',
      ),
      AT,
    );
    expect(single.packages.map((p) => [p.kind, p.name, p.version])).toEqual([
      ['windows-hotfix', 'KB5048667', ''],
      ['windows-program', 'Git', '2.47.1'],
    ]);
  });

  it('takes null fields and lists, and Windows PowerShell’s {"value":[…],"Count":n} wrapper', () => {
    const quirky = parseWindowsInventory(
      output(
        '{"os":{"caption":"Microsoft Windows Server 2019 Standard","version":"10.0.17763","build":null},' +
          '"programs":{"value":[{"name":"Tool","version":null,"publisher":null,"arch":"x86"},{"name":null,"version":"1","publisher":"x","arch":"x64"}],"Count":2},' +
          '"hotfixes":null}',
      ),
      AT,
    );
    expect(quirky.os).toEqual({
      id: 'windows',
      name: 'Microsoft Windows Server 2019 Standard',
      version: '10.0.17763',
    });
    expect(quirky.packages).toEqual([{ kind: 'windows-program', name: 'Tool', version: '', arch: 'x86' }]);
  });

  it('lists a duplicate entry once, and keeps two versions of one program apart', () => {
    const duplicated = parseWindowsInventory(
      output(
        '{"os":{"caption":"W","version":"10.0.20348","build":"20348"},"programs":[' +
          '{"name":"Agent","version":"2.1","publisher":"","arch":"x64"},' +
          '{"name":"Agent","version":"2.1","publisher":"Contoso","arch":"x64"},' +
          '{"name":"Agent","version":"2.0","publisher":"Contoso","arch":"x64"},' +
          '{"name":"Agent","version":"2.1","publisher":"Contoso","arch":"x86"}' +
          '],"hotfixes":["KB1","KB1"]}',
      ),
      AT,
    );
    expect(
      duplicated.packages.map((p) => [p.kind, p.name, p.version, p.arch ?? '', p.publisher ?? '']),
    ).toEqual([
      ['windows-hotfix', 'KB1', '', '', ''],
      ['windows-program', 'Agent', '2.0', 'x64', 'Contoso'],
      ['windows-program', 'Agent', '2.1', 'x64', 'Contoso'],
      ['windows-program', 'Agent', '2.1', 'x86', 'Contoso'],
    ]);
  });

  it('takes the line that is the marker alone, not a transcript line that mentions it', () => {
    const echoed = [
      `PS> Write-Output '${WINDOWS_INVENTORY_MARKER}'`,
      WINDOWS_INVENTORY_MARKER,
      SERVER_2022,
    ].join('\n');
    expect(parseWindowsInventory(echoed, AT)).toEqual(inventory);
  });

  it('reads JSON that PowerShell printed over several lines, with a byte-order mark', () => {
    const pretty = JSON.stringify(JSON.parse(SERVER_2022), null, 4).replace(/\n/g, '\r\n');
    expect(parseWindowsInventory(output(`\uFEFF${pretty}`), AT)).toEqual(inventory);
  });

  it('says what is missing: the marker, the JSON, or JSON that is not an inventory', () => {
    expect(() => parseWindowsInventory('Get-HotFix : Access is denied\r\n')).toThrow(
      `no "${WINDOWS_INVENTORY_MARKER}" line`,
    );
    expect(() => parseWindowsInventory(output(''))).toThrow(/ends at its marker line/);
    expect(() => parseWindowsInventory(output('{"os":{"caption":'))).toThrow(/is not JSON/);
    expect(() => parseWindowsInventory(output('[1,2]'))).toThrow(/not an object/);
    expect(() => parseWindowsInventory(output('{"programs":[]}'))).toThrow(/no "os" object/);
  });

  it('the script prints the marker this parser looks for', () => {
    expect(WINDOWS_INVENTORY_SCRIPT).toContain(`Write-Output '${WINDOWS_INVENTORY_MARKER}'`);
  });
});
