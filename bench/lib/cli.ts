/** Command-line numbers of the benchmarks: every bad one is reported, all at once. */
export class OptionErrors {
  readonly problems: string[] = [];

  /** `raw` as a number > 0 (`fallback` if absent); a problem is recorded if it is not one. */
  positive(name: string, raw: string | undefined, fallback: number): number {
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (raw.trim() !== '' && Number.isFinite(value) && value > 0) return value;
    this.problems.push(`--${name} must be a number above 0, got "${raw}"`);
    return fallback;
  }

  /** Throws one error naming every problem, if there is any. */
  throwIfAny(): void {
    if (this.problems.length > 0) throw new Error(`bad options:\n  ${this.problems.join('\n  ')}`);
  }
}
