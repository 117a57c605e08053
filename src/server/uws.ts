import uWS from 'uWebSockets.js';

/**
 * The uWebSockets.js package loads its native binary, and silently falls back to a slow pure-JS
 * server when that fails. The fallback has no SSLApp; we refuse to run on it.
 */
export class NativeUwsUnavailableError extends Error {
  constructor(why: string) {
    super(
      `uWebSockets.js native binary is not in use (${why}). matchbook-gateway runs only on the native server: ` +
        'Node.js 16, 18 or 20 (ABI 93, 108, 115) on linux x64/arm64/arm (glibc, not Alpine/musl), darwin x64/arm64 ' +
        `or win32 x64. This process is Node.js ${process.version} (ABI ${process.versions.modules}) on ` +
        `${process.platform}-${process.arch}. Unset UWS_USE_FALLBACK and use a supported Node.js and platform.`,
    );
    this.name = 'NativeUwsUnavailableError';
  }
}

export function nativeUws(): typeof uWS {
  const forced = process.env.UWS_USE_FALLBACK;
  if (forced && forced !== '0' && forced.toLowerCase() !== 'false') {
    throw new NativeUwsUnavailableError(`UWS_USE_FALLBACK=${forced} forces the pure-JS fallback`);
  }
  if (typeof (uWS as { SSLApp?: unknown }).SSLApp !== 'function') {
    throw new NativeUwsUnavailableError(
      'the binary failed to load and the pure-JS fallback was loaded instead',
    );
  }
  return uWS;
}
