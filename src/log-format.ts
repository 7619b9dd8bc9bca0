/** The forms of `amore.log` (log.ts), apart from the logger so that `listen --help` loads no pino. */
export type LogFormat = 'text' | 'json';
export const LOG_FORMATS: readonly LogFormat[] = ['text', 'json'];
