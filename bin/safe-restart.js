#!/usr/bin/env node
// The bin runs the compiled CLI; `npm install` builds it through the `prepare` script.
import { main } from '../dist/cli.js';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    process.stderr.write(`safe-restart: internal error: ${error?.stack ?? error}\n`);
    process.exitCode = 70;
  },
);
