/** `isobuild testvm`: start, list and stop disposable Linux test VMs (network namespaces, see testvm/). */
import { parseArgs } from 'node:util';
import { IsobuildError } from '../../errors.js';
import {
  cleanupStaleTestVms,
  listTestVms,
  startTestVm,
  stopTestVm,
  type TestVm,
} from '../../testvm/test-vm.js';
import type { CommandIo } from '../command.js';

export const TESTVM_HELP = `Usage: isobuild testvm <start|list|stop|cleanup> [options]

Disposable Linux test VMs for builds without Azure. Each VM is a set of Linux namespaces with its own
address (10.231.N.2), a copy-on-write view of this machine's root filesystem (nothing written inside
reaches the host), sshd on port 22 with key-only login, and the user "isobuild" with passwordless sudo.
It has no route to the internet. Needs root.

  start            start a VM and print how to reach it; it runs until "stop"
  list             list running VMs
  stop ID|--all    stop a VM (or all) and remove everything it had
  cleanup          remove VMs left behind by crashed runs

Options:
  --json           print VMs as JSON
  -h, --help       show this help`;

export async function runTestVm(argv: string[], io: CommandIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { json: { type: 'boolean' }, all: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    allowPositionals: true,
  });
  const [action, ...rest] = positionals;
  if (values.help || action === undefined) {
    io.out(TESTVM_HELP);
    return values.help ? 0 : 2;
  }
  const print = (vms: TestVm[]): void => {
    if (values.json) io.out(JSON.stringify(vms, null, 2));
    else if (vms.length === 0) io.out('No test VMs are running.');
    else for (const vm of vms) io.out(describe(vm));
  };
  switch (action) {
    case 'start': {
      const vm = await startTestVm({ detached: true, signal: io.signal });
      print([vm]);
      if (!values.json) {
        io.out(`\nssh -i ${vm.keyFile} ${vm.user}@${vm.address}`);
        io.out(
          `isobuild build <template> --host ${vm.address} --user ${vm.user} --ssh-key-file ${vm.keyFile}`,
        );
        io.out(`isobuild testvm stop ${vm.id}`);
      }
      return 0;
    }
    case 'list':
      print(await listTestVms());
      return 0;
    case 'stop': {
      const ids = values.all ? (await listTestVms()).map((vm) => vm.id) : rest.map(Number);
      if (ids.length === 0 || ids.some((id) => !Number.isInteger(id) || id <= 0)) {
        throw new IsobuildError('usage', 'testvm stop needs VM ids (see "isobuild testvm list") or --all.');
      }
      for (const id of ids) await stopTestVm(id);
      io.out(`Stopped ${ids.length} test VM(s).`);
      return 0;
    }
    case 'cleanup': {
      const removed = await cleanupStaleTestVms();
      io.out(
        removed.length > 0 ? `Removed leftovers of test VM(s) ${removed.join(', ')}.` : 'No leftovers found.',
      );
      return 0;
    }
    default:
      throw new IsobuildError(
        'usage',
        `unknown testvm action "${action}"; use start, list, stop or cleanup.`,
      );
  }
}

function describe(vm: TestVm): string {
  const owner = vm.ownerPid === 0 ? 'kept until stopped' : `owned by pid ${vm.ownerPid}`;
  return `VM ${vm.id}: ${vm.user}@${vm.address}:22, key ${vm.keyFile} (${owner})`;
}
