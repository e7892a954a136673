import { Option, type Command } from 'commander';
import { replayEvent, replayFailedEvents } from '../../events/replay-events.js';
import { AdminError, parseCustomerId, type CommandContext } from '../cli-support.js';

export function registerEventCommands(program: Command, context: CommandContext): void {
  const eventsCommand = program.command('events').description('Events of a customer');
  eventsCommand
    .command('replay')
    .description('Deliver one event again, or every event since a time whose delivery failed or is stuck')
    .requiredOption('--customer <id>', 'the customer', parseCustomerId)
    .addOption(new Option('--event <id>', 'the event to deliver again'))
    .addOption(new Option('--failed-since <time>', 'ISO time: every failed or stuck event since then').conflicts('event'))
    .action(async (options: { customer: string; event?: string; failedSince?: string }) => {
      const d = await context.deps();
      if (options.event !== undefined) {
        const queued = await replayEvent(d.replay, options.customer, options.event);
        context.io.out(`Event ${options.event} queued again for ${queued.length} endpoint(s), with the same webhook-id.`);
      } else if (options.failedSince !== undefined) {
        const since = new Date(options.failedSince);
        if (Number.isNaN(since.getTime())) throw new AdminError(`--failed-since: "${options.failedSince}" is not a time.`);
        const result = await replayFailedEvents(d.replay, options.customer, since);
        context.io.out(`${result.replayedEvents} of ${result.scannedEvents} event(s) since ${since.toISOString()} had failed or stuck deliveries; ${result.queued.length} queued again.`);
      } else {
        throw new AdminError('Name an event with --event <id>, or use --failed-since <time>.');
      }
    });
}
