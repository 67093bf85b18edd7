/**
 * PowerShell over WinRM: scripts go as `powershell.exe -EncodedCommand <base64 of UTF-16LE>` (no quoting
 * problems, as Packer does it), and error records that arrive as CLIXML on stderr become readable text.
 */

/** The command line that runs `script`; progress records are silenced so they do not flood stderr. */
export function encodePowerShell(script: string): string {
  const full = `$ProgressPreference = 'SilentlyContinue'; ${script}`;
  return `powershell.exe -NoProfile -NonInteractive -EncodedCommand ${Buffer.from(full, 'utf16le').toString('base64')}`;
}

/** The script inside an -EncodedCommand command line, or undefined when it is something else. */
export function decodeEncodedCommand(commandLine: string): string | undefined {
  const match = /-EncodedCommand\s+([A-Za-z0-9+/=]+)/i.exec(commandLine);
  return match?.[1] ? Buffer.from(match[1], 'base64').toString('utf16le') : undefined;
}

/**
 * `#< CLIXML` followed by serialized objects → the text of their string elements, with PowerShell's
 * `_x000D__x000A_` escapes turned back into line breaks. Anything that is not CLIXML is returned as is.
 */
export function decodeClixml(stderr: string): string {
  const start = stderr.indexOf('#< CLIXML');
  if (start < 0) return stderr;
  const xml = stderr.slice(start + '#< CLIXML'.length);
  const strings = [...xml.matchAll(/<S\b[^>]*>([\s\S]*?)<\/S>/g)].map((m) => m[1] ?? '');
  if (strings.length === 0) return stderr;
  const text = strings
    .join('')
    .replace(/_x([0-9A-Fa-f]{4})_/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)))
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&amp;/g, '&')
    .replace(/\r\n/g, '\n');
  return `${stderr.slice(0, start)}${text}`.trimEnd();
}
