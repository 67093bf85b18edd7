/**
 * Stops whatever a cancelled or timed-out run left running on the build VM and removes its scripts.
 * Packer neither kills remote commands on cancel (without a PTY) nor cleans up after SIGKILL, so isobuild
 * finds the sessions running this run's scripts (/tmp/isobuild-<runId>-*) and kills them whole.
 */
import { loadSsh2 } from '../readiness/load-ssh2.js';
import type { SshProbeTarget } from '../readiness/ssh-probe.js';

export const CLEANUP_BUDGET_MS = 30_000;

export function remoteCleanupScript(runId: string): string {
  // The awk process holds the pattern too, but runs in this session, which is skipped.
  return `me=$(ps -o sid= -p $$ | tr -d ' ')
killed=0
for sid in $(ps -eo sid=,args= | awk -v pat='/tmp/isobuild-${runId}-' 'index($0, pat) { print $1 }' | sort -u); do
  [ "$sid" = "$me" ] && continue
  sudo -n pkill -KILL -s "$sid" 2>/dev/null || pkill -KILL -s "$sid" 2>/dev/null || true
  killed=$((killed + 1))
done
rm -f /tmp/isobuild-${runId}-* 2>/dev/null || sudo -n rm -f /tmp/isobuild-${runId}-* 2>/dev/null || true
echo "sessions-stopped=$killed"`;
}

/** Returns how many remote sessions were stopped; rejects when the VM cannot be reached within the budget. */
export async function cleanUpRemoteRun(
  target: SshProbeTarget,
  runId: string,
  budgetMs = CLEANUP_BUDGET_MS,
): Promise<number> {
  const { Client } = await loadSsh2();
  return new Promise((resolve, reject) => {
    const client = new Client();
    const timer = setTimeout(() => {
      client.end();
      reject(
        new Error(
          `the cleanup on ${target.label ?? `${target.host}:${target.port}`} did not finish within ${budgetMs / 1000} s`,
        ),
      );
    }, budgetMs);
    const fail = (error: Error): void => {
      clearTimeout(timer);
      client.end();
      reject(error);
    };
    client
      .once('ready', () => {
        client.exec(remoteCleanupScript(runId), (error, stream) => {
          if (error) return fail(error);
          let output = '';
          stream.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
          stream.stderr.resume();
          stream.once('close', () => {
            clearTimeout(timer);
            client.end();
            resolve(Number(/sessions-stopped=(\d+)/.exec(output)?.[1] ?? 0));
          });
        });
      })
      // ssh2 may emit more than one error for a broken connection: every one must be handled.
      .on('error', fail)
      .connect({
        host: target.host,
        port: target.port,
        username: target.user,
        ...(target.privateKey ? { privateKey: target.privateKey } : {}),
        ...(target.password !== undefined ? { password: target.password } : {}),
        readyTimeout: budgetMs,
      });
  });
}
