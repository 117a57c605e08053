import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** A file of the live page, read once at startup. */
export interface StaticFile {
  readonly body: string;
  readonly contentType: string;
  readonly etag: string;
  readonly cacheControl: string;
}

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
};

/**
 * The page is revalidated on every load (its asset names are not hashed, so a deploy must show at
 * once); assets may be reused for a minute, then revalidated by ETag.
 */
const PAGE_CACHE = 'no-cache';
const ASSET_CACHE = 'public, max-age=60';

/** From dist/src/server: the repository root. */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

function file(path: string, cacheControl: string): StaticFile {
  const body = readFileSync(path, 'utf8');
  return {
    body,
    contentType: CONTENT_TYPES[extname(path)]!,
    etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
    cacheControl,
  };
}

function walk(directory: string): string[] {
  return readdirSync(directory, { withFileTypes: true }).flatMap((entry) => {
    const path = join(directory, entry.name);
    return entry.isDirectory() ? walk(path) : [path];
  });
}

/**
 * The live page (GET /) and its assets (GET /assets/...): the page's HTML and CSS from src/page and
 * the browser build's modules from dist/browser. The set of URLs is fixed here; a request is looked
 * up in it and never turned into a file path, so no path can reach another file. Without a browser
 * build (a server built with tsconfig.build.json alone), GET / still answers, without a script.
 */
export function loadStaticAssets(root = ROOT): ReadonlyMap<string, StaticFile> {
  const assets = new Map<string, StaticFile>();
  const page = join(root, 'src', 'page');
  assets.set('/', file(join(page, 'index.html'), PAGE_CACHE));
  assets.set('/assets/style.css', file(join(page, 'style.css'), ASSET_CACHE));
  const browser = join(root, 'dist', 'browser');
  if (existsSync(browser)) {
    for (const path of walk(browser)) {
      if (!path.endsWith('.js')) continue;
      assets.set(`/assets/${relative(browser, path).split(sep).join('/')}`, file(path, ASSET_CACHE));
    }
  }
  return assets;
}
