import { readFileSync } from 'node:fs';

import type { Catalogue } from '../domain/catalogue';
import { CatalogueSchema, DEFAULT_CATALOGUE, mergeCatalogues } from '../domain/catalogue';

/** The default flavors and images, with a user's catalogue file (same shape) merged over them. */
export function loadCatalogue(file?: string): Catalogue {
  if (!file) return DEFAULT_CATALOGUE;
  const parsed = CatalogueSchema.partial().safeParse(JSON.parse(readFileSync(file, 'utf8')));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`catalogue ${file}: ${issue?.path.join('.')}: ${issue?.message}`);
  }
  return mergeCatalogues(DEFAULT_CATALOGUE, { flavors: parsed.data.flavors ?? [], images: parsed.data.images ?? [] });
}
