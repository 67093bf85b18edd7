/**
 * The inventory phases: the VM's software inventory is taken before the first customizer (the baseline)
 * and after the last step that changes the VM, before deprovisioning (the SBOM). A failure to collect is
 * reported (terminal, log, status.sbom) and never fails the build; a stop of the run stops it.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { seconds } from '../../format-seconds.js';
import { LOG_BLOBS } from '../../logstore/run-uploads.js';
import { collectInventory } from '../../sbom/collect-inventory.js';
import { prepareCycloneDx } from '../../sbom/cyclonedx.js';
import type { Inventory } from '../../sbom/inventory.js';
import type { Phase } from '../phase-runner.js';
import type { RunContext } from '../run-context.js';
import { readBaseline, writeSbom } from '../sbom-record.js';

/** The most one collection may take; dpkg-query over SSH takes well under a second. */
const COLLECT_BUDGET_MS = 60_000;

export const inventoryBeforePhase: Phase<RunContext> = {
  name: 'inventory before customizing',
  skip: (run) => run.status.sbom.state === 'off' || !customizes(run),
  async run(run, signal) {
    const { sbom } = run.status;
    try {
      // A resumed run's VM may be customized part-way (even a failed step 1 may have changed it): the
      // source image's inventory is the earlier run's, if it has one.
      const skipped = run.plan?.skipped.some((step) => step.kind === 'customizer') ?? false;
      if (run.plan?.resumedFrom || skipped) {
        const earlier = readBaseline(run);
        if (earlier.inventory || skipped) {
          sbom.baseline = earlier.baseline;
          if (earlier.inventory) await keepBaseline(run, earlier.inventory);
          else note(run, `no inventory before customizing: ${earlier.baseline.detail}`);
          return;
        }
      }
      const started = Date.now();
      const inventory = await collect(run, signal);
      sbom.baseline = { source: 'collected' };
      await keepBaseline(run, inventory);
      run.logs.customization.write(
        'ISOBUILD',
        `inventory before customizing: ${inventory.packages.length} packages (${seconds(Date.now() - started)})`,
      );
    } catch (error) {
      if (signal.aborted) throw error;
      const detail = (error as Error).message;
      sbom.baseline = { source: 'unavailable', detail };
      note(
        run,
        `warning: ${detail}; the SBOM will not say what the customization changed (--no-sbom skips the inventories).`,
      );
    } finally {
      prepareSbom();
    }
  },
};

export const inventoryAfterPhase: Phase<RunContext> = {
  name: 'inventory after customizing',
  skip: (run) => run.status.sbom.state === 'off',
  async run(run, signal) {
    const { sbom } = run.status;
    const started = Date.now();
    try {
      const inventory = await collect(run, signal);
      const summary = await writeSbom(run, inventory);
      run.options.report(`${summary} (${seconds(Date.now() - started)})`);
      run.logs.customization.write('ISOBUILD', summary);
    } catch (error) {
      if (signal.aborted) throw error;
      sbom.state = 'failed';
      sbom.detail = (error as Error).message;
      note(
        run,
        `warning: no SBOM: ${sbom.detail}. The build goes on; status.json (sbom) says so. Fix what the reason names, or build with --no-sbom to skip the inventory.`,
      );
    }
    await run.statusFile.write(run.status);
  },
};

/** The SBOM library's start-up runs while Packer customizes, not at the end of the build. */
function prepareSbom(): void {
  // Started after the inventory (not before), so the two do not compete for the CPU. A failure here shows
  // up again, and is reported, when the SBOM is written.
  setImmediate(() => void prepareCycloneDx().catch(() => undefined));
}

/** Whether the run runs customizers on this VM (source validation runs none). */
function customizes(run: RunContext): boolean {
  return !run.template.validate.sourceValidationOnly && run.template.customize.length > 0;
}

function collect(run: RunContext, signal: AbortSignal): Promise<Inventory> {
  const connection = run.connection;
  if (!connection) throw new Error('the VM was not connected'); // the connect phase runs first
  return collectInventory(run.vmPath, connection.relay, {
    budgetMs: COLLECT_BUDGET_MS,
    signal,
    knownRelayFailure: connection.failureBeforePacker,
  });
}

/** The baseline is this run's (and goes with it: a later --resume of this run can use it). */
async function keepBaseline(run: RunContext, inventory: Inventory): Promise<void> {
  const file = join(run.runDir, LOG_BLOBS.baseline);
  await writeFile(file, `${run.mask(JSON.stringify(inventory, null, 2))}\n`);
  run.baseline = inventory;
  run.store.storeRecord('baseline', file);
}

function note(run: RunContext, line: string): void {
  run.options.report(line);
  run.logs.customization.write('ISOBUILD', line);
}
