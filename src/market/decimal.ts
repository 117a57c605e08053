/**
 * Prices and sizes travel as canonical decimal strings: no leading zeros, exactly the product's
 * number of decimals ("12.30" for a 0.01 increment). Canonical strings of the same scale compare
 * numerically by length and then lexicographically, so books never round-trip through floats.
 */

/** Formats an integer count of 10^-decimals units ("units") as a canonical decimal string. */
export function formatUnits(units: number, decimals: number): string {
  if (!Number.isSafeInteger(units) || units < 0) throw new RangeError(`cannot format ${units} units`);
  if (decimals === 0) return String(units);
  const digits = String(units).padStart(decimals + 1, '0');
  const cut = digits.length - decimals;
  return `${digits.slice(0, cut)}.${digits.slice(cut)}`;
}

/** Parses a canonical decimal of the given scale into integer units. */
export function parseUnits(canonical: string): number {
  return Number(canonical.replace('.', ''));
}

/**
 * Builds a validator for canonical decimals with exactly `decimals` decimals, and at most 15
 * digits in all, so that every accepted value is exactly representable as integer units.
 */
export function canonicalPattern(decimals: number): RegExp {
  const integerDigits = Math.max(1, 15 - decimals);
  const integer = `(0|[1-9]\\d{0,${integerDigits - 1}})`;
  return new RegExp(decimals === 0 ? `^${integer}$` : `^${integer}\\.\\d{${decimals}}$`);
}

/** Numeric comparison of two canonical decimals of the same scale. */
export function compareCanonical(a: string, b: string): number {
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

export function isZero(canonical: string): boolean {
  for (let i = 0; i < canonical.length; i++) {
    const c = canonical.charCodeAt(i);
    if (c !== 48 /* 0 */ && c !== 46 /* . */) return false;
  }
  return true;
}
