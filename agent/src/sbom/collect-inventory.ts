/**
 * Collects the build VM's software inventory over the run's relay, the way Packer reaches the VM: one SSH
 * command (dpkg-query or rpm) on Linux, one PowerShell script over WinRM on Windows. Bounded by its own
 * budget and the caller's signal; a failure says what went wrong and where.
 */
import type { Relay } from '../relay/relay.js';
import { SshCommandTimeout, sshExec } from '../vm-path/ssh-exec.js';
import type { VmPath, WinRmVmPath } from '../vm-path/vm-path.js';
import { sshTarget, winRmTarget } from '../vm-path/vm-probe.js';
import { WinRmClient } from '../winrm/client.js';
import type { Inventory } from './inventory.js';
import { LINUX_INVENTORY_SCRIPT, parseLinuxInventory } from './linux-inventory.js';
import { parseWindowsInventory, WINDOWS_INVENTORY_SCRIPT } from './windows-inventory.js';

export interface CollectOptions {
  /** For the whole collection (connect, login, the command), in ms. */
  readonly budgetMs: number;
  readonly signal: AbortSignal;
  /** The relay's failure from before (readiness retries): not news when the collection fails. */
  readonly knownRelayFailure?: string | undefined;
}

/** The inventory could not be collected: `message` says why, naming the hop. */
export class InventoryFailed extends Error {
  override name = 'InventoryFailed';
}

export async function collectInventory(
  path: VmPath,
  relay: Relay,
  options: CollectOptions,
): Promise<Inventory> {
  try {
    if (path.protocol === 'SSH') {
      const output = await sshExec(sshTarget(path, relay), LINUX_INVENTORY_SCRIPT, {
        budgetMs: options.budgetMs,
        signal: options.signal,
      });
      return parseLinuxInventory(output);
    }
    return await collectWindowsInventory(path, relay, options);
  } catch (error) {
    if (options.signal.aborted) throw options.signal.reason; // a stop is the run's news, not the inventory's
    // A broken hop says more than the client's error (the relay knows which hop refused or reset).
    const hop = relay.lastFailure();
    const why =
      hop && hop !== options.knownRelayFailure
        ? hop
        : error instanceof SshCommandTimeout
          ? `no inventory within ${options.budgetMs / 1000} s`
          : error instanceof Error
            ? error.message
            : String(error);
    throw new InventoryFailed(`the software inventory of ${path.label} could not be collected: ${why}`);
  }
}

async function collectWindowsInventory(
  path: WinRmVmPath,
  relay: Relay,
  { budgetMs, signal }: CollectOptions,
): Promise<Inventory> {
  const client = new WinRmClient(winRmTarget(path, relay));
  const budget = AbortSignal.timeout(budgetMs);
  try {
    const result = await client.runPowerShell(WINDOWS_INVENTORY_SCRIPT, {
      signal: AbortSignal.any([signal, budget]),
    });
    if (result.exitCode !== 0) {
      const last = result.stderr.trim().split(/\r?\n/).pop() ?? '';
      throw new Error(`the inventory script exited with ${result.exitCode}${last ? `: ${last}` : ''}`);
    }
    return parseWindowsInventory(result.stdout);
  } catch (error) {
    if (budget.aborted && !signal.aborted) throw new Error(`no inventory within ${budgetMs / 1000} s`);
    throw error;
  } finally {
    client.close();
  }
}
