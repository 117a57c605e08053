import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { type Copy, DockerfileParser, type Instruction, type JSONInstruction } from 'dockerfile-ast';

/**
 * The runtime stage of the Dockerfile as the container smoke test needs it, read with dockerfile-ast
 * so the test follows the file instead of restating it. Every instruction of the stage is accounted
 * for: one this model does not know fails the test, so a new step cannot slip past it unchecked.
 */
export interface RuntimeImage {
  /** Every FROM, `name:tag` (the build stage's and the runtime's). */
  readonly bases: readonly string[];
  readonly labels: ReadonlyMap<string, string>;
  readonly env: ReadonlyMap<string, string>;
  /** The image's WORKDIR when the CMD runs. */
  readonly workdir: string;
  /** Files put into the image, in order. */
  readonly steps: readonly ImageStep[];
  /** Debian packages the stage installs with apt-get. */
  readonly aptPackages: readonly string[];
  readonly accounts: readonly { readonly uid: number; readonly gid: number; readonly home: string }[];
  readonly user: { readonly uid: number; readonly gid: number };
  readonly volumes: readonly string[];
  readonly exposed: readonly number[];
  /** The HEALTHCHECK's exec-form command. */
  readonly healthcheck: readonly string[];
  readonly entrypoint: readonly string[];
  readonly cmd: readonly string[];
}

export type ImageStep =
  /** Copy `source` (relative to the repository: the build context, or the build stage's output) to `target` in the image. */
  | {
      readonly kind: 'copy';
      readonly from: 'context' | 'build';
      readonly source: string;
      readonly target: string;
    }
  /** Run an npm command in `cwd` (an image path). */
  | { readonly kind: 'npm'; readonly args: readonly string[]; readonly cwd: string };

/** Shell words of a RUN line that only change the system (packages, accounts), not the app's files. */
const SYSTEM_COMMANDS = new Set(['apt-get', 'rm', 'groupadd', 'useradd']);

export function readRuntimeImage(path: string): RuntimeImage {
  const dockerfile = DockerfileParser.parse(readFileSync(path, 'utf8'));
  const froms = dockerfile.getFROMs();
  const runtimeFrom = froms.at(-1);
  if (!runtimeFrom) throw new Error('the Dockerfile has no FROM');
  const buildFrom = froms.find((from) => from.getBuildStage() === 'build');
  if (!buildFrom) throw new Error('the Dockerfile has no stage named "build"');
  const buildWorkdir = lastWorkdir(
    dockerfile.getInstructions(),
    buildFrom.getRange().start.line,
    runtimeLine(),
  );

  function runtimeLine(): number {
    return runtimeFrom!.getRange().start.line;
  }

  const labels = new Map<string, string>();
  const env = new Map<string, string>();
  const steps: ImageStep[] = [];
  const aptPackages: string[] = [];
  const accounts: { uid: number; gid: number; home: string }[] = [];
  const volumes: string[] = [];
  const exposed: number[] = [];
  let workdir = '/';
  let user: { uid: number; gid: number } | undefined;
  let healthcheck: string[] | undefined;
  let entrypoint: string[] | undefined;
  let cmd: string[] | undefined;

  const stage = dockerfile.getInstructions().filter((i) => i.getRange().start.line > runtimeLine());
  for (const instruction of stage) {
    const keyword = instruction.getKeyword();
    const args = instruction.getArguments().map((a) => a.getValue());
    switch (keyword) {
      case 'LABEL':
      case 'ENV':
        for (const property of (instruction as unknown as PropertyLike).getProperties())
          (keyword === 'LABEL' ? labels : env).set(property.getName(), property.getValue() ?? '');
        break;
      case 'WORKDIR':
        workdir = absolute(args[0] ?? '', workdir);
        break;
      case 'COPY': {
        const copy = instruction as Copy;
        const from = copy.getFromFlag()?.getValue();
        if (from !== undefined && from !== 'build') throw new Error(`COPY --from=${from}: unknown stage`);
        if (copy.getFlags().some((flag) => flag.getName() !== 'from'))
          throw new Error(`${instruction.getTextContent()}: flags the smoke test does not reproduce`);
        const target = absolute(args.at(-1) ?? '', workdir);
        for (const source of args.slice(0, -1)) {
          steps.push({
            kind: 'copy',
            from: from === 'build' ? 'build' : 'context',
            source: from === 'build' ? relativeTo(buildWorkdir, source) : source,
            target:
              args.length > 2 || target.endsWith('/')
                ? `${target.replace(/\/$/, '')}/${basename(source)}`
                : target,
          });
        }
        break;
      }
      case 'RUN':
        for (const command of splitCommands(args)) {
          const [program, ...rest] = command;
          if (program === 'npm') {
            if (rest[0] === 'cache' && rest[1] === 'clean') continue; // The cache lives outside the app.
            steps.push({ kind: 'npm', args: rest, cwd: workdir });
          } else if (program === 'apt-get' && rest.includes('install')) {
            aptPackages.push(...rest.slice(rest.indexOf('install') + 1).filter((w) => !w.startsWith('-')));
          } else if (program === 'useradd') {
            accounts.push({
              uid: Number(option(command, '--uid')),
              gid: Number(option(command, '--gid')),
              home: option(command, '--home-dir'),
            });
          } else if (program === undefined || !SYSTEM_COMMANDS.has(program)) {
            throw new Error(`RUN step the container smoke test does not know: ${command.join(' ')}`);
          }
        }
        break;
      case 'USER': {
        const match = /^(\d+):(\d+)$/.exec(args[0] ?? '');
        if (!match) throw new Error(`USER ${args[0]}: must be a numeric UID:GID`);
        user = { uid: Number(match[1]), gid: Number(match[2]) };
        break;
      }
      case 'VOLUME':
        volumes.push(...jsonOf(instruction));
        break;
      case 'EXPOSE':
        exposed.push(...args.map((port) => Number(port.replace(/\/tcp$/, ''))));
        break;
      case 'HEALTHCHECK': {
        const raw = instruction.getRawArgumentsContent() ?? '';
        const json = raw.slice(raw.indexOf('CMD') + 3).trim();
        healthcheck = JSON.parse(json.replace(/\\\r?\n/g, '')) as string[];
        break;
      }
      case 'ENTRYPOINT':
        entrypoint = jsonOf(instruction);
        break;
      case 'CMD':
        cmd = jsonOf(instruction);
        break;
      default:
        throw new Error(`runtime-stage instruction the container smoke test does not know: ${keyword}`);
    }
  }
  if (!user) throw new Error('the runtime stage sets no USER');
  if (!healthcheck || !entrypoint || !cmd)
    throw new Error('the runtime stage lacks HEALTHCHECK, ENTRYPOINT or CMD');
  return {
    bases: froms.map((from) => `${from.getImageName()}:${from.getImageTag()}`),
    labels,
    env,
    workdir,
    steps,
    aptPackages,
    accounts,
    user,
    volumes,
    exposed,
    healthcheck,
    entrypoint,
    cmd,
  };
}

/** Every path any stage copies from the build context (COPY without --from), for the .dockerignore check. */
export function contextSources(path: string): string[] {
  const dockerfile = DockerfileParser.parse(readFileSync(path, 'utf8'));
  return dockerfile
    .getCOPYs()
    .filter((copy) => copy.getFromFlag() === null)
    .flatMap((copy) =>
      copy
        .getArguments()
        .slice(0, -1)
        .map((a) => a.getValue()),
    );
}

interface PropertyLike {
  getProperties(): { getName(): string; getValue(): string | null }[];
}

/** An exec-form (JSON array) argument list; the shell form is refused, so no shell is ever PID 1. */
function jsonOf(instruction: Instruction): string[] {
  const strings = (instruction as JSONInstruction).getJSONStrings();
  if (strings.length === 0) throw new Error(`${instruction.getKeyword()} must be an exec-form JSON array`);
  return strings.map((s) => s.getJSONValue());
}

function lastWorkdir(instructions: Instruction[], after: number, before: number): string {
  let workdir = '/';
  for (const instruction of instructions) {
    const line = instruction.getRange().start.line;
    if (line > after && line < before && instruction.getKeyword() === 'WORKDIR')
      workdir = absolute(instruction.getArguments()[0]?.getValue() ?? '', workdir);
  }
  return workdir;
}

function absolute(path: string, workdir: string): string {
  if (path.startsWith('/')) return path;
  const joined = `${workdir.replace(/\/$/, '')}/${path}`;
  return joined.replace(/\/\.(\/|$)/g, '/');
}

/** A build-stage path as a path in this checkout (the build stage's WORKDIR holds the repository). */
function relativeTo(workdir: string, path: string): string {
  const full = absolute(path, workdir);
  const prefix = `${workdir.replace(/\/$/, '')}/`;
  if (!full.startsWith(prefix))
    throw new Error(`COPY --from=build ${path}: outside the build stage's ${workdir}`);
  return full.slice(prefix.length);
}

function splitCommands(words: readonly string[]): string[][] {
  const commands: string[][] = [[]];
  for (const word of words) {
    if (word === '&&') commands.push([]);
    else commands.at(-1)!.push(word);
  }
  return commands.filter((c) => c.length > 0);
}

function option(command: readonly string[], name: string): string {
  const index = command.indexOf(name);
  const value = index >= 0 ? command[index + 1] : undefined;
  if (value === undefined) throw new Error(`${command.join(' ')}: no ${name}`);
  return value;
}
