// The toy PowerShell's commands that change the machine state, the way a customizer registers or removes a
// program or installs a hotfix on Windows: New-Item, New-ItemProperty, Set-ItemProperty, Remove-Item and
// Remove-ItemProperty on the Uninstall keys, and wusa.exe for .msu packages. Registry paths outside the
// Uninstall keys are accepted and ignored, like every other command the toy does not know.
import { editMachineState, hotfixId, storedKeyName, uninstallKeyOf } from './machine-state.mjs';

/** wusa.exe's results: success with a restart pending (/norestart), already installed, not installed. */
export const WUSA_EXIT = { restartNeeded: 3010, alreadyInstalled: 0x240006, notInstalled: 0x240007 };

const SWITCHES = new Set(['force', 'recurse', 'whatif', 'confirm', 'passthru']);
const ALIASES = { literalpath: 'path', pspath: 'path', type: 'propertytype', ea: 'erroraction' };
const WUSA = /^(?:&\s*)?(?:(['"])[^'"]*?\bwusa(?:\.exe)?\1|(?:\S*[\\/])?wusa(?:\.exe)?)(?:\s+(.*))?$/i;

/**
 * Runs `line` if it is one of these commands, against the state in `sandbox`. Returns undefined for any
 * other line; else `{ error }` (an error record's text, with the line's `-ErrorAction`) or `{ exitCode }`
 * (a native command's $LASTEXITCODE), or `{}`.
 */
export function runMachineCmdlet(line, sandbox) {
  const wusa = WUSA.exec(line);
  if (wusa) return runWusa(wusa[2] ?? '', sandbox);
  const cmdlet =
    /^(New-Item|New-ItemProperty|Set-ItemProperty|Remove-Item|Remove-ItemProperty)\s+(.*)$/i.exec(line);
  if (!cmdlet) return undefined;
  const { named, positional } = parameters(cmdlet[2]);
  const verb = cmdlet[1].toLowerCase();
  let path = String(named.path ?? positional[0] ?? '');
  if (verb === 'new-item' && named.name !== undefined) path = `${path.replace(/[\\/]+$/, '')}\\${named.name}`;
  const key = uninstallKeyOf(path);
  // The Uninstall key itself is never recreated or removed: on Windows that would drop every program.
  if (!key?.name) return {};
  const valueName = String(named.name ?? positional[1] ?? '');
  const value = typed(named.value ?? positional[2] ?? '', named.propertytype);
  const result = editMachineState(sandbox, (state) => {
    const keys = state.uninstall[key.arch];
    const stored = storedKeyName(keys, key.name);
    const missing = { error: `Cannot find path '${path}' because it does not exist.` };
    switch (verb) {
      case 'new-item':
        if (stored !== undefined && !named.force) return { error: 'A key at this path already exists.' };
        // -Force on an existing key recreates it empty, as the registry provider does.
        if (stored !== undefined) delete keys[stored];
        keys[key.name] = {};
        return {};
      case 'remove-item':
        if (stored === undefined) return missing;
        delete keys[stored];
        return {};
      default: {
        if (stored === undefined) return missing;
        const values = keys[stored];
        const existing = storedKeyName(values, valueName);
        if (verb === 'remove-itemproperty') {
          if (existing === undefined)
            return { error: `Property ${valueName} does not exist at path ${path}.` };
          delete values[existing];
        } else {
          if (verb === 'new-itemproperty' && existing !== undefined && !named.force)
            return { error: 'The property already exists.' };
          values[existing ?? valueName] = value;
        }
        return {};
      }
    }
  });
  return { ...result, errorAction: String(named.erroraction ?? '').toLowerCase() };
}

/** `wusa.exe C:\x\windows10.0-kb5005112-x64.msu /quiet /norestart`, `wusa.exe /uninstall /kb:5005112 …`. */
function runWusa(args, sandbox) {
  const uninstall = /(?:^|\s)\/uninstall\b/i.test(args);
  const id = uninstall
    ? hotfixId(/\/kb:(\d+)/i.exec(args)?.[1] ?? '')
    : hotfixId(/kb(\d+)[^\\/]*\.msu\b/i.exec(args)?.[1] ?? '');
  if (id === undefined) return { exitCode: 87 }; // ERROR_INVALID_PARAMETER: no package or KB named
  const exitCode = editMachineState(sandbox, (state) => {
    const installed = state.hotfixes.includes(id);
    if (uninstall) {
      if (!installed) return WUSA_EXIT.notInstalled;
      state.hotfixes = state.hotfixes.filter((hotfix) => hotfix !== id);
    } else {
      if (installed) return WUSA_EXIT.alreadyInstalled;
      state.hotfixes.push(id);
    }
    return WUSA_EXIT.restartNeeded;
  });
  return { exitCode };
}

/** A cmdlet's arguments: `-Name value`, switches, `-Name:value`, and positional words. */
function parameters(text) {
  const named = {};
  const positional = [];
  const tokens = [...text.matchAll(/'((?:[^']|'')*)'|"((?:[^"`]|`.)*)"|(\S+)/g)].map((m) =>
    m[1] !== undefined
      ? { text: m[1].replace(/''/g, "'"), quoted: true }
      : m[2] !== undefined
        ? { text: m[2].replace(/`(.)/g, '$1'), quoted: true }
        : { text: m[3], quoted: false },
  );
  for (let i = 0; i < tokens.length; i += 1) {
    const parameter = tokens[i].quoted ? undefined : /^-([A-Za-z]+)(?::(.*))?$/.exec(tokens[i].text);
    if (!parameter) {
      positional.push(literal(tokens[i]));
      continue;
    }
    const name = ALIASES[parameter[1].toLowerCase()] ?? parameter[1].toLowerCase();
    if (parameter[2] !== undefined) named[name] = parameter[2];
    else if (SWITCHES.has(name)) named[name] = true;
    else if (i + 1 < tokens.length) named[name] = literal(tokens[(i += 1)]);
  }
  return { named, positional };
}

/** An unquoted number is an Int32 in PowerShell (a REG_DWORD when written); anything else a string. */
function literal(token) {
  if (!token.quoted && /^-?\d+$/.test(token.text)) return Number(token.text);
  if (!token.quoted && /^0x[0-9a-f]+$/i.test(token.text)) return parseInt(token.text, 16);
  return token.text;
}

function typed(value, propertyType) {
  if (/^(?:DWord|QWord)$/i.test(String(propertyType ?? ''))) return Number(value);
  if (/^(?:String|ExpandString)$/i.test(String(propertyType ?? ''))) return String(value);
  return value;
}
