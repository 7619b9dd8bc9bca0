/** `1 run`, `2 runs`: a count with its noun. */
export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/**
 * A piece of outside input quoted in a message or the log: at most `max` characters, the rest
 * summarised, so that a runaway line costs a line.
 */
export function excerpt(text: string, max = 200): string {
  if (text.length <= max) return text;
  return `${text.slice(0, max)}... (${text.length - max} more characters)`;
}
