/**
 * The PowerShell an upload runs on the VM: quoting of the destination, refused paths, what the writer is
 * told (offset, expected bytes, the file's size) and how its report line is read.
 */
import { describe, expect, it } from 'vitest';
import {
  checkRemotePath,
  parseWriterReport,
  quotePowerShell,
  removalScript,
  writerScript,
  WRITER_SHORT_EXIT,
} from '../../agent/src/winrm/upload-scripts.js';

describe('upload scripts', () => {
  it('quotes a path as a PowerShell literal: every kind of single quote doubled, nothing expanded', () => {
    expect(quotePowerShell("C:\\it's $env:TEMP\\x")).toBe("'C:\\it''s $env:TEMP\\x'");
    expect(quotePowerShell('C:\\a\u2019b\u2018c\u201Ad\u201Be')).toBe(
      "'C:\\a\u2019\u2019b\u2018\u2018c\u201A\u201Ad\u201B\u201Be'",
    );
  });

  it('refuses destinations that are not absolute Windows paths or hold what Windows paths cannot', () => {
    expect(checkRemotePath('C:\\Windows\\Temp\\isobuild-staging\\a b.zip')).toBeUndefined();
    expect(checkRemotePath('d:/data/x.bin')).toBeUndefined();
    expect(checkRemotePath('relative\\x')).toContain('not an absolute Windows path');
    expect(checkRemotePath('\\\\server\\share\\x')).toContain('not an absolute Windows path');
    expect(checkRemotePath('C:\\a\nb')).toContain('characters Windows paths cannot hold');
    expect(checkRemotePath('C:\\a"b')).toContain('characters Windows paths cannot hold');
    expect(checkRemotePath('C:\\a?b')).toContain('characters Windows paths cannot hold');
  });

  it("tells the writer its range and the file's size, and to fail when bytes are missing", () => {
    const script = writerScript({
      path: "C:\\it's\\x.bin",
      offset: 52_428_800,
      length: 52_428_801,
      fileLength: 104_857_601,
    });
    expect(script).toContain("$path = 'C:\\it''s\\x.bin'");
    expect(script).toContain('$offset = [long]52428800');
    expect(script).toContain('$expected = [long]52428801');
    expect(script).toContain('$fileLength = [long]104857601');
    expect(script).toContain('$file.SetLength($fileLength)');
    expect(script).toContain('[Console]::In');
    expect(script).toContain(`if ($written -ne $expected) { exit ${WRITER_SHORT_EXIT} }`);
    // Stays far below cmd.exe's 8191-character command line once encoded (UTF-16LE, base64).
    expect(Math.ceil((script.length * 2) / 3) * 4).toBeLessThan(6_000);
  });

  it('removes by literal path, so brackets in a name are not wildcards', () => {
    const script = removalScript('C:\\staging\\[1].bin');
    expect(script).toContain("$path = 'C:\\staging\\[1].bin'");
    expect(script).toContain('Remove-Item -LiteralPath $path -Force');
  });

  it("reads the writer's report line, and nothing else", () => {
    const hex = 'ab'.repeat(32);
    expect(parseWriterReport(`isobuild-upload bytes=1048576 sha256=${hex}\r\n`)).toEqual({
      bytes: 1_048_576,
      sha256: hex,
    });
    expect(parseWriterReport('')).toBeUndefined();
    expect(parseWriterReport(`isobuild-upload bytes=1 sha256=${hex.slice(2)}\r\n`)).toBeUndefined();
    expect(parseWriterReport(`isobuild-upload bytes=1 sha256=${hex}\r\nsomething after\r\n`)).toBeUndefined();
  });
});
