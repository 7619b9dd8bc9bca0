/**
 * Which broker the GUI's update messages go to (docs/operations.md, "The GUI link"): the
 * `listen --update-broker` option, else `AMORE_BROKER` (as the reference reads it), else the
 * `update_broker` setting, else the facility's broker. `none` sends nothing; `file:PATH` appends
 * each message as a JSON line to PATH. Light on purpose: commands check the option before
 * loading any client.
 */
import type { SettingsSource } from '../db/config-keys.js';

/** The reference's default broker (definitions.py), reachable inside the facility's network. */
export const DEFAULT_UPDATE_BROKER = 'exflwgs06.desy.de:9091';

export interface BrokerChoice {
  /** `none`, `file:PATH`, or host:port[,host:port...] */
  value: string;
  /** Where it came from, for the log. */
  from: string;
}

/** Which broker update messages go to (see the module comment for the order). */
export function chooseUpdateBroker(settings: SettingsSource, option?: string, env: NodeJS.ProcessEnv = process.env): BrokerChoice {
  if (option !== undefined && option.trim() !== '') return { value: option.trim(), from: '--update-broker' };
  const fromEnv = env.AMORE_BROKER;
  if (fromEnv !== undefined && fromEnv.trim() !== '') return { value: fromEnv.trim(), from: 'AMORE_BROKER' };
  const setting = settings.get('update_broker');
  if (setting !== null && setting !== undefined && String(setting).trim() !== '') {
    return { value: String(setting).trim(), from: 'db-config update_broker' };
  }
  return { value: DEFAULT_UPDATE_BROKER, from: 'the facility default' };
}

/** A broker value that cannot be used, with why; null when it is fine. */
export function brokerProblem(value: string): string | null {
  if (value === 'none' || value.startsWith('file:')) return value === 'file:' ? 'file: needs a path' : null;
  const bad = value.split(',').find((b) => !/^[^\s:,]+:\d+$/.test(b.trim()));
  return bad === undefined ? null : `'${bad.trim()}' is not host:port (or 'none', or file:PATH)`;
}
