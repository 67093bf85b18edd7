// The fake Windows VM's stand-in for isobuild's upload writer (see upload-scripts.ts): reads base64 lines
// from stdin, writes the bytes at an offset of the destination, hashes them, and prints what the
// PowerShell script prints. Errors come out as PowerShell's do: a CLIXML error record on stderr, exit 1.
// Usage: node upload-writer.mjs <file> <offset> <expected> <fileLength, or - to leave the size> <shortExit> <corrupt 0|1>
import { createHash } from 'node:crypto';
import { closeSync, constants, ftruncateSync, fstatSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

const [file, offsetText, expectedText, sizeText, shortExit, corrupt] = process.argv.slice(2);
const fail = (message) => {
  process.stderr.write(
    `#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04"><S S="Error">${String(
      message,
    )
      .replace(/&/g, '&amp;')
      .replace(/</g, '&lt;')}_x000D__x000A_</S></Objs>`,
  );
  process.exit(1);
};

try {
  mkdirSync(dirname(file), { recursive: true });
} catch {
  fail(
    `Exception calling "CreateDirectory" with "1" argument(s): "Cannot create "${dirname(file)}" because a file or directory with the same name already exists."`,
  );
}
let fd;
try {
  fd = openSync(file, constants.O_RDWR | constants.O_CREAT); // OpenOrCreate: an existing file is kept
  if (sizeText !== '-' && fstatSync(fd).size !== Number(sizeText)) ftruncateSync(fd, Number(sizeText));
} catch (error) {
  fail(`Exception calling ".ctor" with "4" argument(s): "${error.message}"`);
}

const hash = createHash('sha256');
let position = Number(offsetText);
let written = 0;
let pending = '';
let garble = corrupt === '1';

function writeLine(line) {
  if (line.length === 0) return;
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(line) || line.length % 4 !== 0)
    fail(
      'Exception calling "FromBase64String" with "1" argument(s): "The input is not a valid Base-64 string."',
    );
  const bytes = Buffer.from(line, 'base64');
  if (garble && bytes.length > 0) {
    bytes[0] ^= 0xff;
    garble = false;
  }
  for (let at = 0; at < bytes.length;) at += writeSync(fd, bytes, at, bytes.length - at, position + at);
  position += bytes.length;
  hash.update(bytes);
  written += bytes.length;
}

process.stdin.setEncoding('latin1');
process.stdin.on('data', (chunk) => {
  const lines = (pending + chunk).split('\n');
  pending = lines.pop();
  for (const line of lines) writeLine(line.replace(/\r$/, ''));
});
process.stdin.on('end', () => {
  writeLine(pending.replace(/\r$/, ''));
  closeSync(fd);
  process.stdout.write(`isobuild-upload bytes=${written} sha256=${hash.digest('hex')}\r\n`);
  process.exitCode = written === Number(expectedText) ? 0 : Number(shortExit);
});
