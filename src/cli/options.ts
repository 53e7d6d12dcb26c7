/** Option parsers for the conductor CLI: a bad value is a usage error (exit 2) naming the option. */
import { InvalidArgumentError, Option } from 'commander';
import type { Command } from 'commander';

import { VmState } from '../domain/instance';

/** Parses a whole number from `min` (to `max`); commander reports the option and the value when it throws. */
export function wholeNumber(min: number, max?: number): (value: string) => number {
  const range = max === undefined ? `of at least ${min}` : `from ${min} to ${max}`;
  return (value) => {
    const n = /^\d+$/.test(value.trim()) ? Number(value) : NaN;
    if (!Number.isSafeInteger(n) || n < min || (max !== undefined && n > max))
      throw new InvalidArgumentError(`It must be a whole number ${range}.`);
    return n;
  };
}

export const stateOption = () =>
  new Option('--state <state>', 'only instances in this vmState').choices(Object.values(VmState));

/** A subcommand that acts on one instance, named by its id or its (unique) name. */
export const instanceCommand = (program: Command, name: string, description: string): Command =>
  program.command(name).description(description).argument('<instance>', 'its id, or its name when unique');
