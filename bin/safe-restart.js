#!/usr/bin/env node
// The bin runs the bundled CLI (one file per command, loaded lazily); `npm install` builds it via `prepare`.
import { main } from '../dist/bundle/cli.js';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    process.stderr.write(`safe-restart: internal error: ${error?.stack ?? error}\n`);
    process.exitCode = 70;
  },
);
