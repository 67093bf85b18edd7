#!/usr/bin/env node
/**
 * isobuild-proxy: the companion TCP forwarder that models AIB's proxy VM (60001 -> build VM :22,
 * 60000 -> build VM :5986). It arrives with the network issue; until then it only explains itself.
 */
process.stderr.write(
  [
    'Usage: isobuild-proxy --target <build VM address> [options]',
    '',
    'isobuild-proxy forwards 60001 -> <target>:22 (SSH) and 60000 -> <target>:5986 (WinRM over HTTPS),',
    "like Azure VM Image Builder's proxy VM. It is not implemented yet in this version.",
    '',
  ].join('\n'),
);
process.exitCode = 2;
