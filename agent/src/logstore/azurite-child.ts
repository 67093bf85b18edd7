/**
 * Runs Azurite's blob service as a child of isobuild that cannot outlive its users. When the starting
 * isobuild's IPC channel closes (it is done, or it died, even by SIGKILL), Azurite keeps serving only
 * while other isobuild processes registered in the users directory are alive (e.g. `logs --follow`),
 * then shuts down cleanly and removes its endpoint record.
 * Usage (internal): node azurite-child.js <azurite blob main.js> [azurite options…]
 * Environment: ISOBUILD_AZURITE_USERS (directory of <pid> files), ISOBUILD_AZURITE_ENDPOINT (record file).
 */
import { readFileSync, readdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { isProcessAlive } from '../processes.js';

const [main, ...args] = process.argv.slice(2);
// A separate program, started by embedded-azurite.ts with these two variables: it reads its own
// environment, not isobuild's settings.
const usersDir = process.env.ISOBUILD_AZURITE_USERS;
const endpointFile = process.env.ISOBUILD_AZURITE_ENDPOINT;
if (!main || !process.send || !usersDir || !endpointFile) {
  process.stderr.write('azurite-child: started by isobuild only (IPC channel and environment needed)\n');
  process.exit(2);
}
const starter = process.ppid;
const lockFile = join(dirname(endpointFile ?? ''), 'starting.lock');

function othersAlive(): boolean {
  let entries: string[] = [];
  try {
    entries = readdirSync(usersDir ?? '');
  } catch {
    return false;
  }
  return entries.some((entry) => Number(entry) !== starter && isProcessAlive(Number(entry)));
}

process.once('disconnect', () => {
  const check = (): void => {
    // Under the start lock: no isobuild can be registering and reusing this Azurite meanwhile.
    if (!takeLockSync()) return;
    try {
      if (othersAlive()) return;
      clearInterval(timer);
      removeQuietly(endpointFile ?? '');
      process.kill(process.pid, 'SIGTERM'); // Azurite's own handler closes the service and saves its data
    } finally {
      removeQuietly(lockFile);
    }
  };
  const timer = setInterval(check, 500);
  check();
});
process.once('exit', () => removeQuietly(endpointFile ?? ''));

function takeLockSync(): boolean {
  try {
    writeFileSync(lockFile, String(process.pid), { flag: 'wx' });
    return true;
  } catch (error) {
    // The data directory is gone (the work directory was removed): nobody can register any more.
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return true;
    const owner = Number(readFileOr(lockFile));
    if (owner && !isProcessAlive(owner)) removeQuietly(lockFile);
    return false;
  }
}

function readFileOr(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Already gone.
  }
}
process.argv = [process.argv[0] ?? process.execPath, main, ...args];
createRequire(import.meta.url)(main);
