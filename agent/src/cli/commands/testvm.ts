/** `isobuild testvm`: start, list and stop disposable Linux test VMs (network namespaces, see testvm/). */
import { parseArgs } from 'node:util';
import { IsobuildError } from '../../errors.js';
import {
  cleanupStaleTestVms,
  findTestVm,
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
It has Debian's Azure Linux agent (waagent, unpacked into the VM only), so AIB's deprovision step runs
for real. It has no route to the internet. Needs root.

  start            start a VM and print how to reach it; it runs until "stop"
  list             list running VMs
  stop HANDLE|--all  stop a VM (or all) and remove everything it had; HANDLE is what start and list
                   print (e.g. 3-9f0c2a): slot numbers are reused, handles never
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
          `isobuild build <template> --host ${vm.address} --user ${vm.user} --ssh-key-file ${vm.keyFile}${vm.azureAgent ? '' : ' --skip-deprovision'}`,
        );
        io.out(`isobuild testvm stop ${vm.handle}`);
      }
      if (!vm.azureAgent) {
        io.err(
          `isobuild testvm: warning: the VM has no Azure Linux agent (${vm.azureAgentProblem ?? 'unknown reason'}), so AIB's deprovision step cannot run on it: build with --skip-deprovision, or check that apt can download the waagent package.`,
        );
      }
      return 0;
    }
    case 'list':
      print(await listTestVms());
      return 0;
    case 'stop': {
      const vms = values.all ? await listTestVms() : await resolveHandles(rest);
      for (const vm of vms) await stopTestVm(vm.id, vm.handle);
      io.out(`Stopped ${vms.length} test VM(s).`);
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

/** Every handle must name a running VM of that very start, or nothing is stopped. */
async function resolveHandles(handles: string[]): Promise<TestVm[]> {
  if (handles.length === 0) {
    throw new IsobuildError('usage', 'testvm stop needs VM handles (see "isobuild testvm list") or --all.');
  }
  const vms: TestVm[] = [];
  for (const handle of handles) {
    const vm = await findTestVm(handle);
    if (!vm) {
      const hint = /^\d+$/.test(handle)
        ? ' A bare slot number is not enough, since slots are reused: use the handle that "isobuild testvm list" prints (e.g. 3-9f0c2a).'
        : ' It was stopped already, or belongs to an earlier start; "isobuild testvm list" shows the running ones.';
      throw new IsobuildError(
        'usage',
        `no running test VM has the handle "${handle}"; nothing was stopped.${hint}`,
      );
    }
    vms.push(vm);
  }
  return vms;
}

function describe(vm: TestVm): string {
  const owner = vm.ownerPid === 0 ? 'kept until stopped' : `owned by pid ${vm.ownerPid}`;
  const agent = vm.azureAgent ? '' : ', no Azure Linux agent';
  return `VM ${vm.handle}: ${vm.user}@${vm.address}:22, key ${vm.keyFile} (${owner}${agent})`;
}
