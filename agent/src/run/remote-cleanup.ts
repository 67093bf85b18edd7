/**
 * Stops whatever a cancelled or timed-out run left running on the build VM and removes its scripts.
 * Packer neither kills remote commands on cancel (without a PTY) nor cleans up after SIGKILL, so isobuild
 * finds the sessions running this run's scripts (/tmp/isobuild-<runId>-*) and kills them whole.
 */
import { remoteScriptPattern } from '../packer-contract.js';
import type { SshProbeTarget } from '../readiness/ssh-probe.js';
import { SshCommandTimeout, sshExec } from '../vm-path/ssh-exec.js';

export const CLEANUP_BUDGET_MS = 30_000;

export function remoteCleanupScript(runId: string): string {
  const scripts = remoteScriptPattern(runId);
  // The awk process holds the pattern too, but runs in this session, which is skipped.
  return `me=$(ps -o sid= -p $$ | tr -d ' ')
killed=0
for sid in $(ps -eo sid=,args= | awk -v pat='${scripts}' 'index($0, pat) { print $1 }' | sort -u); do
  [ "$sid" = "$me" ] && continue
  sudo -n pkill -KILL -s "$sid" 2>/dev/null || pkill -KILL -s "$sid" 2>/dev/null || true
  killed=$((killed + 1))
done
rm -f ${scripts}* 2>/dev/null || sudo -n rm -f ${scripts}* 2>/dev/null || true
echo "sessions-stopped=$killed"`;
}

/** Returns how many remote sessions were stopped; rejects when the VM cannot be reached within the budget. */
export async function cleanUpRemoteRun(
  target: SshProbeTarget,
  runId: string,
  budgetMs = CLEANUP_BUDGET_MS,
): Promise<number> {
  try {
    const output = await sshExec(target, remoteCleanupScript(runId), { budgetMs });
    return Number(/sessions-stopped=(\d+)/.exec(output)?.[1] ?? 0);
  } catch (error) {
    if (!(error instanceof SshCommandTimeout)) throw error;
    throw new Error(`the cleanup on ${error.where} did not finish within ${budgetMs / 1000} s`);
  }
}
