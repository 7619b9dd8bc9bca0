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

/** `a, b, c` or `a, b, c, d, e and 4 more`. */
export function nameList(names: readonly string[]): string {
  const shown = names.slice(0, 5).join(', ');
  return names.length > 5 ? `${shown} and ${names.length - 5} more` : shown;
}
