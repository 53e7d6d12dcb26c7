/**
 * `npm run conductor -- <command>`: the conductor for people who think in Nova terms. Operations start
 * the conductor's Temporal workflows (the same ones the `temporal` CLI starts) and follow them live
 * (step, host, attempt) until they settle; `list`, `show`, `hosts` read the store, as nova-manage does.
 * One module per command under ./commands; the store is opened as a client, never migrated here.
 *
 * Exit status: 0 the operation succeeded, 1 it failed (its typed message is printed, never a stack
 * trace), 2 bad usage or a request refused as invalid, 3 the audit found something, 130 interrupted
 * (Ctrl-C) while following an operation, which goes on.
 */
import { Command, CommanderError } from 'commander';

import * as audit from './commands/audit';
import * as boot from './commands/boot';
import * as catalogue from './commands/catalogue';
import * as confirm from './commands/confirm';
import * as consoleCommand from './commands/console';
import * as deleteCommand from './commands/delete';
import * as evacuate from './commands/evacuate';
import * as host from './commands/host';
import * as hosts from './commands/hosts';
import * as list from './commands/list';
import * as liveMigrate from './commands/live-migrate';
import * as migrate from './commands/migrate';
import * as notifications from './commands/notifications';
import * as pauseCommands from './commands/pause';
import * as shelveCommands from './commands/shelve';
import * as reboot from './commands/reboot';
import * as reconcile from './commands/reconcile';
import * as rebuild from './commands/rebuild';
import * as resetState from './commands/reset-state';
import * as resize from './commands/resize';
import * as revert from './commands/revert';
import * as serverGroup from './commands/server-group';
import * as show from './commands/show';
import * as start from './commands/start';
import * as stop from './commands/stop';
import {
  closeContext,
  createContext,
  EXIT_FAILED,
  EXIT_INTERRUPTED,
  EXIT_OK,
  EXIT_USAGE,
  exitQuietlyOnClosedPipe,
  Interrupted,
  OperationFailed,
  UsageError,
} from './context';
import type { Action, Context, Run } from './context';

const COMMANDS = [
  boot,
  list,
  show,
  consoleCommand,
  stop,
  start,
  reboot,
  pauseCommands,
  shelveCommands,
  rebuild,
  evacuate,
  resize,
  migrate,
  liveMigrate,
  confirm,
  revert,
  resetState,
  deleteCommand,
  hosts,
  host,
  serverGroup,
  catalogue,
  audit,
  reconcile,
  notifications,
];

const EXIT_STATUS = `
Exit status: 0 the operation succeeded, 1 it failed (its typed message is printed), 2 bad usage or a
request refused as invalid, 3 the audit found something, 130 interrupted (Ctrl-C) while following an
operation: the operation goes on, and the message says how to watch it.`;

/** The exit status for what an action threw, printed as one line (JSON on stdout with --json). */
function failure(ctx: Context, command: string, err: unknown): number {
  if (err instanceof UsageError) {
    console.error(`conductor ${command}: ${err.message}`);
    return EXIT_USAGE;
  }
  if (err instanceof Interrupted) {
    if (ctx.json) console.log(JSON.stringify({ interrupted: { workflowId: err.workflowId } }));
    console.error(`\n${err.message}`);
    return EXIT_INTERRUPTED;
  }
  if (err instanceof OperationFailed) {
    if (ctx.json) console.log(JSON.stringify({ error: { type: err.type, message: err.message } }));
    else console.error(`${err.type}: ${err.message}`);
    return err.type === 'InvalidRequest' ? EXIT_USAGE : EXIT_FAILED;
  }
  console.error(`conductor ${command}: ${(err as Error).message}`);
  return EXIT_FAILED;
}

/** The commander program; `run` executes the chosen command's action. */
export function createProgram(run: Run): Command {
  const program = new Command('conductor')
    .usage('<command> [options] [--json]   (npm run conductor -- …)')
    .description("Nova's conductor on Temporal: boot, operate and inspect instances and hosts.")
    .option('--json', 'print JSON on stdout instead of tables (progress stays on stderr)')
    .exitOverride()
    .configureOutput({ outputError: (str, write) => write(`conductor: ${str.replace(/^error: /, '')}`) })
    .showHelpAfterError("(see 'npm run conductor -- --help')")
    .addHelpText('after', EXIT_STATUS);
  for (const command of COMMANDS) command.register(program, run);
  return program;
}

export async function main(argv: readonly string[]): Promise<number> {
  let code = EXIT_OK;
  let command = '';
  const program: Command = createProgram(async (action: Action) => {
    const ctx = createContext(program.opts<{ json?: boolean }>().json === true);
    try {
      code = await action(ctx);
    } catch (err) {
      code = failure(ctx, command, err);
    } finally {
      await closeContext(ctx);
    }
  });
  program.hook('preAction', (_program, actionCommand) => {
    command = actionCommand.name();
  });
  try {
    await program.parseAsync([...argv], { from: 'user' });
  } catch (err) {
    // Help asked for: 0; anything commander refused (unknown command or option, a bad value): 2.
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    throw err;
  }
  return code;
}

if (require.main === module) {
  exitQuietlyOnClosedPipe();
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      console.error(`conductor: ${(err as Error).message}`);
      process.exitCode = EXIT_FAILED;
    }
  );
}
