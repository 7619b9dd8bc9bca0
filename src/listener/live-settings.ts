/**
 * The backend's settings read afresh for every run (docs/operations.md, "Settings"), so that a
 * `db-config` change applies to the next run without a restart: context_python, run_timeout
 * and mymdc_source give the run's environment, and when they change the warm workers are
 * replaced (the old ones finish the runs they have, then stop); concurrent_jobs sets how many
 * runs go at once. An invalid value fails the run that reads it, with the setting named, and
 * the backend goes on; fixing the value lets the next run through.
 */
import os from 'node:os';
import { requireContextPython } from '../context/interpreter.js';
import { numberSetting, stringSetting } from '../db/config-keys.js';
import type { DamnitDb } from '../db/database.js';
import type { RunEnvironment, RunExecutor } from '../executors/executor.js';
import { runTimeLimit } from '../runs/time-limit.js';

interface ExecutorEntry {
  key: string;
  env: RunEnvironment;
  executor: RunExecutor;
  /** Runs using it now. */
  users: number;
  retired: boolean;
}

function keyOf(env: RunEnvironment): string {
  return JSON.stringify([env.python, env.timeoutMs, env.timeLimitSetting, env.mymdcSource]);
}

/** What changed between two environments, for the log. */
function changes(before: RunEnvironment, after: RunEnvironment): string[] {
  const said: string[] = [];
  if (before.python !== after.python) said.push(`context_python ${after.python}`);
  if (before.timeoutMs !== after.timeoutMs) said.push(`${after.timeLimitSetting ?? 'run_timeout'} ${after.timeoutMs / 1000} s`);
  if (before.mymdcSource !== after.mymdcSource) said.push(`mymdc_source ${after.mymdcSource ?? '(the facility)'}`);
  return said;
}

export class LiveRunSettings {
  private current: ExecutorEntry;
  private readonly retiring = new Set<ExecutorEntry>();
  /** context_python as last probed successfully (its text), so that it is probed only when it changes. */
  private probedSetting: string;

  constructor(
    private readonly db: DamnitDb,
    first: RunEnvironment,
    private readonly createExecutor: (env: RunEnvironment) => RunExecutor,
    private readonly onChange: (message: string) => void,
  ) {
    this.current = { key: keyOf(first), env: first, executor: createExecutor(first), users: 0, retired: false };
    this.probedSetting = String(db.metameta.get('context_python') ?? '');
  }

  get env(): RunEnvironment {
    return this.current.env;
  }

  /**
   * The environment and executor for the next run, from the settings as they are now; throws
   * an Error naming the setting when one is invalid. `release` once the run is over.
   */
  async forNextRun(): Promise<{ env: RunEnvironment; executor: RunExecutor; release: () => void }> {
    const configured = this.db.metameta.get('context_python');
    let python = this.current.env.python;
    if (String(configured ?? '') !== this.probedSetting) {
      python = (await requireContextPython(configured)).python;
      this.probedSetting = String(configured ?? '');
    }
    const limit = runTimeLimit(this.db.metameta);
    const env: RunEnvironment = {
      ...this.current.env,
      python,
      timeoutMs: limit.ms,
      timeLimitSetting: limit.setting,
      mymdcSource: stringSetting(this.db.metameta, 'mymdc_source'),
    };
    if (!(env.timeoutMs > 0)) throw new Error(`setting ${limit.setting} gives ${env.timeoutMs / 1000} s: it must be a positive time`);
    const key = keyOf(env);
    if (key !== this.current.key) {
      this.onChange(`settings changed (${changes(this.current.env, env).join(', ')}): runs from now on use them`);
      this.retire(this.current);
      this.current = { key, env, executor: this.createExecutor(env), users: 0, retired: false };
    }
    const entry = this.current;
    entry.users += 1;
    let released = false;
    return {
      env,
      executor: entry.executor,
      release: () => {
        if (released) return;
        released = true;
        entry.users -= 1;
        if (entry.retired && entry.users === 0) void this.closeEntry(entry);
      },
    };
  }

  /** concurrent_jobs as it is now (capped by the cores), or an Error naming what is wrong with it. */
  concurrency(): number | Error {
    try {
      const n = numberSetting(this.db.metameta, 'concurrent_jobs');
      if (!(Number.isInteger(n) && n > 0)) return new Error(`setting concurrent_jobs is ${n}: it must be a whole number above 0`);
      return Math.min(n, os.availableParallelism());
    } catch (err) {
      return err as Error;
    }
  }

  private retire(entry: ExecutorEntry): void {
    entry.retired = true;
    if (entry.users === 0) void this.closeEntry(entry);
    else this.retiring.add(entry);
  }

  private async closeEntry(entry: ExecutorEntry): Promise<void> {
    this.retiring.delete(entry);
    await entry.executor.close().catch(() => undefined);
  }

  async close(): Promise<void> {
    await Promise.all([...this.retiring, this.current].map((e) => e.executor.close().catch(() => undefined)));
  }
}
