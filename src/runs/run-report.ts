/**
 * What a processing of a run says about how it went, in the same words everywhere (reprocess's
 * terminal lines, amore.log, the run's process log): the summary, and each variable that
 * failed with its error class and the first line of its message, e.g.
 * `r12 xgm_intensity: KeyError: 'SA2_XTD1_XGM/XGM/DOOCS'`.
 */
import type { VariableResultMessage } from '../context/protocol.js';
import { excerpt } from '../text.js';
import { summariseVariables } from './run-request.js';

export interface VariableFailure {
  name: string;
  /** The exception's class, e.g. KeyError; Skip for a variable skipped on purpose. */
  cls: string;
  /** The first line of its message. */
  message: string;
}

/** The variables of a result that failed (or were skipped), in the order they were computed. */
export function variableFailures(variables: readonly VariableResultMessage[]): VariableFailure[] {
  const failures: VariableFailure[] = [];
  for (const v of variables) {
    const attrs = v.attributes;
    if (attrs === null || !('error' in attrs)) continue;
    const message = String(attrs.error ?? '').split('\n').find((l) => l.trim() !== '') ?? '';
    failures.push({ name: v.name, cls: String(attrs.error_cls ?? 'Error'), message: excerpt(message.trim()) });
  }
  return failures;
}

/** `r12 xgm_intensity: KeyError: 'x'` (or without the run, when the context already says it). */
export function describeFailure(failure: VariableFailure, run?: number): string {
  const subject = run === undefined ? failure.name : `r${run} ${failure.name}`;
  return failure.message === '' ? `${subject}: ${failure.cls}` : `${subject}: ${failure.cls}: ${failure.message}`;
}

/** How a processing ended, for its process log: the summary line, the failed variables, a fatal error's traceback. */
export function processingEnding(
  outcome: { ok: true; variables: readonly VariableResultMessage[] } | { ok: false; reason: string; detail?: string },
  seconds: number,
): string {
  const time = `${seconds.toFixed(1)} s`;
  if (!outcome.ok) {
    const detail = outcome.detail ? `\n${outcome.detail.replace(/\n$/, '')}` : '';
    return `----- FAILED after ${time}: ${outcome.reason}${detail}\n`;
  }
  const failures = variableFailures(outcome.variables).map((f) => `  ${describeFailure(f)}\n`);
  return `----- done in ${time}: ${summariseVariables([...outcome.variables])}\n${failures.join('')}`;
}
