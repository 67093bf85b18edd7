// Runs a command on a test VM over SSH (ssh2), for tests that inspect what a build left on the VM.
import { readFileSync } from 'node:fs';
import { Client } from 'ssh2';

export interface SshTarget {
  readonly address: string;
  readonly port?: number;
  readonly user: string;
  readonly keyFile: string;
}

export function sshExec(
  target: SshTarget,
  command: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    client
      .once('ready', () => {
        client.exec(command, (error, stream) => {
          if (error) {
            client.end();
            reject(error);
            return;
          }
          let stdout = '';
          let stderr = '';
          stream.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
          stream.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
          stream.once('close', (code: number | null) => {
            client.end();
            resolve({ code: code ?? -1, stdout, stderr });
          });
        });
      })
      .once('error', reject)
      .connect({
        host: target.address,
        port: target.port ?? 22,
        username: target.user,
        privateKey: readFileSync(target.keyFile),
        readyTimeout: 10_000,
      });
  });
}
