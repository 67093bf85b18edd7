// isobuild's upload scripts as the fake Windows VM runs them, recognised by their shape (as commands.ts
// recognises winrmcp's restore script), never by importing the agent's script builder: the stdin writer
// (base64 lines in; the bytes written at an offset of the destination, sized first; "isobuild-upload bytes=N
// sha256=HEX" out, exit 3 when the count is short) and the removal of a partial file. The writer is a
// process of its own (upload-writer.mjs) reading a real pipe, so Send's flow control and a terminate
// behave as they do on Windows.
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { finishedProcess } from './finished-process.js';

export interface UploadScriptBehaviour {
  /** Test only: garble the first piece every writer receives, as a broken transfer would. */
  readonly corruptUploads?: boolean;
}

const WRITER = join(import.meta.dirname, 'upload-writer.mjs');

/** The process for one of isobuild's upload scripts, or undefined when `script` is something else. */
export function startUploadScript(
  script: string,
  mapPath: (windowsPath: string) => string,
  behaviour: UploadScriptBehaviour,
): ChildProcess | undefined {
  // PowerShell's single-quoted literal: any of its four single quotes, doubled, stands for itself.
  const path = /^\$path = '((?:[^'\u2018-\u201B]|(['\u2018-\u201B])\2)*)'$/m
    .exec(script)?.[1]
    ?.replace(/(['\u2018-\u201B])\1/g, '$1');
  if (path === undefined) return undefined;
  if (/\[Console\]::In\b/.test(script) && /FromBase64String/.test(script) && /TransformBlock/.test(script)) {
    const number = (name: string): string | undefined =>
      new RegExp(`^\\$${name} = \\[long\\](\\d+)$`, 'm').exec(script)?.[1];
    const [offset, expected, fileLength] = [number('offset'), number('expected'), number('fileLength')];
    if (offset === undefined || expected === undefined || fileLength === undefined) return undefined;
    const shortExit = /exit (\d+) \}\s*$/.exec(script)?.[1] ?? '1';
    // Only a script that sizes the file cuts off what a longer file there before had beyond it.
    const sized = /\$file\.SetLength\(\$fileLength\)/.test(script) ? fileLength : '-';
    return spawn(
      process.execPath,
      [WRITER, mapPath(path), offset, expected, sized, shortExit, behaviour.corruptUploads ? '1' : '0'],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
  }
  if (/^if \(Test-Path -LiteralPath \$path\) \{ Remove-Item -LiteralPath \$path -Force \}$/m.test(script)) {
    rmSync(mapPath(path), { force: true, recursive: true });
    return finishedProcess(0);
  }
  return undefined;
}
