/**
 * A run's events in the structured log (container runs): phases, steps, log lines and relay connections.
 */
import type { Logger } from '../logging/structured-log.js';
import type { BuildLog } from './build-log.js';

/** What a build tells the structured log besides its log lines. */
export interface BuildEvents {
  phase(subState: string): void;
  step(position: number, step: { readonly name: string; readonly type: string }): void;
  connection(entry: {
    connId: number;
    hop: string;
    bytesToUpstream: number;
    bytesFromUpstream: number;
    durationMs: number;
    end: string;
  }): void;
}

/**
 * Wires a build into the structured log: a child logger per run, per phase and per step, every line of
 * the build's logs (Packer's debug stream at debug level, the rest at info), one event per relay connection.
 */
export function structuredBuildEvents(
  logger: Logger | undefined,
  runId: string,
  logs: { readonly customization: BuildLog; readonly validation: BuildLog },
  initialPhase: string,
): BuildEvents {
  const runLog = logger?.child({ runId });
  let phaseLog = runLog?.child({ phase: initialPhase });
  let stepLog: Logger | undefined;
  for (const [name, log] of Object.entries(logs)) {
    log.tap = (source, line) => {
      const target = stepLog ?? phaseLog;
      if (source === 'PACKER ERR') target?.debug({ log: name, source }, line);
      else target?.info({ log: name, source }, line);
    };
  }
  return {
    phase: (subState) => {
      phaseLog = runLog?.child({ phase: subState });
      stepLog = undefined;
    },
    step: (position, step) => {
      stepLog = phaseLog?.child({ step: position, stepName: step.name, stepType: step.type });
    },
    connection: ({ connId, hop, ...fields }) =>
      runLog?.child({ connId, hop }).info(fields, 'relay connection closed'),
  };
}
