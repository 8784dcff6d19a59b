import type { Command } from '../cli.js';

export const command: Command = {
  name: 'schema',
  summary: 'Print the JSON Schema of the recipe format (the committed restart-recipe.schema.json).',
  usage: 'schema',
  maxPositionals: 0,
  options: {},
  help: 'Editors use it through the first line of a recipe:\n  # yaml-language-server: $schema=../restart-recipe.schema.json',
  async run(_values, _positionals, io) {
    const { buildJsonSchema } = await import('../recipe/schema.js');
    io.stdout.write(`${JSON.stringify(buildJsonSchema(), null, 2)}\n`);
    return 0;
  },
};
