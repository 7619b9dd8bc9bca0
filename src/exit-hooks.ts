/**
 * Work this process must do however it ends, short of SIGKILL: when it exits, and when SIGINT,
 * SIGTERM or SIGHUP ends it. Node runs no 'exit' listener when a signal ends a process, so the
 * signals are caught here while any work is registered, the work is done, and the signal is
 * raised again to end the process as it would have without us; a command that handles the signal
 * itself (listen, reprocess) keeps it, and its exit later runs the work.
 */

type Hook = () => void;

const FORWARDED_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/** Run when the process exits or a signal ends it. */
const atExit = new Set<Hook>();
/** Run on each of FORWARDED_SIGNALS, also one that the command handles and survives. */
const atSignal = new Set<Hook>();
let installed = false;

function runAll(hooks: Set<Hook>): void {
  for (const hook of [...hooks]) {
    try {
      hook();
    } catch {
      // One failed clean-up must not keep the others from running.
    }
  }
}

function onExit(): void {
  runAll(atExit);
}

function onSignal(signal: NodeJS.Signals): void {
  runAll(atSignal);
  if (process.listenerCount(signal) === 1) {
    // Nobody else handles it: the signal ends the process, as it would have without us.
    runAll(atExit);
    uninstall();
    process.kill(process.pid, signal);
  }
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on('exit', onExit);
  for (const signal of FORWARDED_SIGNALS) process.on(signal, onSignal);
}

function uninstall(): void {
  if (!installed) return;
  installed = false;
  process.off('exit', onExit);
  for (const signal of FORWARDED_SIGNALS) process.off(signal, onSignal);
}

function register(set: Set<Hook>, hook: Hook): () => void {
  set.add(hook);
  install();
  return () => {
    set.delete(hook);
    if (atExit.size === 0 && atSignal.size === 0) uninstall();
  };
}

/** Runs `hook` when this process exits or is ended by a signal; returns its removal. */
export function whenExiting(hook: Hook): () => void {
  return register(atExit, hook);
}

/**
 * Runs `hook` on every SIGINT, SIGTERM or SIGHUP (even one the command survives) and when this
 * process exits; returns its removal.
 */
export function whenSignalledOrExiting(hook: Hook): () => void {
  const removeSignal = register(atSignal, hook);
  const removeExit = register(atExit, hook);
  return () => {
    removeSignal();
    removeExit();
  };
}
