import { readFileSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { commandAs } from './users.js';

/** The port supervisord listens on, from a database directory's supervisord.conf. */
export function supervisordPort(db: string): number {
  const match = /^port=[^:\n]*:(\d+)$/m.exec(readFileSync(path.join(db, 'supervisord.conf'), 'utf8'));
  if (!match) throw new Error(`no port in ${db}/supervisord.conf`);
  return Number(match[1]);
}

/**
 * `supervisorctl -c supervisord.conf ARGS` in a database directory, as the seed shows it, over
 * the loopback address (tests never reach the machine's other addresses); `as` runs it as
 * another Unix user (`runuser -u NAME --`).
 */
export async function supervisorctl(db: string, args: string[], as?: string): Promise<{ code: number; out: string }> {
  const command = ['supervisorctl', '-c', 'supervisord.conf', '-s', `http://127.0.0.1:${supervisordPort(db)}`, ...args];
  const res = await execa(...commandAs(as, command), { cwd: db, reject: false });
  return { code: res.exitCode ?? -1, out: `${res.stdout}${res.stderr}` };
}
