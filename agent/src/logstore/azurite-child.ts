/**
 * Runs Azurite's blob service as a child of isobuild that cannot outlive its users. When the starting
 * isobuild's IPC channel closes (it is done, or it died, even by SIGKILL), Azurite keeps serving only
 * while other isobuild processes registered in the users directory are alive (e.g. `logs --follow`),
 * then shuts down cleanly and removes its endpoint record.
 * Usage (internal): node azurite-child.js <azurite blob main.js> [azurite options…]
 * Environment: ISOBUILD_AZURITE_USERS (directory of <pid> files), ISOBUILD_AZURITE_ENDPOINT (record file).
 */
import { readdirSync, unlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isProcessAlive } from '../processes.js';

const [main, ...args] = process.argv.slice(2);
const usersDir = process.env.ISOBUILD_AZURITE_USERS;
const endpointFile = process.env.ISOBUILD_AZURITE_ENDPOINT;
if (!main || !process.send || !usersDir || !endpointFile) {
  process.stderr.write('azurite-child: started by isobuild only (IPC channel and environment needed)\n');
  process.exit(2);
}
const starter = process.ppid;

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
    if (othersAlive()) return;
    clearInterval(timer);
    process.kill(process.pid, 'SIGTERM'); // Azurite's own handler closes the service and saves its data
  };
  const timer = setInterval(check, 500);
  check();
});
process.once('exit', () => {
  try {
    unlinkSync(endpointFile);
  } catch {
    // Already gone.
  }
});
process.argv = [process.argv[0] ?? process.execPath, main, ...args];
createRequire(import.meta.url)(main);
