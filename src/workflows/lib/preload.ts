/**
 * What every workflow thread evaluates once and shares between workflow runs (the SDK's
 * `preloadModules`, src/workers/workflow-bundle.ts): zod, whole. Listing 'zod' there would be dropped
 * by the bundler (the package is free of side effects and the value unused); this module uses it. zod
 * sets its defaults (English messages, the memoizer) when its first schema is built, so one is built
 * here (an object, which sets the memoizer), before the SDK freezes what preloading made.
 */
import { z } from 'zod';

export const preloaded: unknown[] = [z, z.object({ warm: z.array(z.string()) })];
