#!/usr/bin/env node
// The `iaas` command. A committed shim, so npm links it at install time even before the build.
// It runs the bundle (dist/bundle: one file for the program, a chunk per command module, loaded
// when that command runs), which starts faster than the many files tsc writes to dist/.
import "../dist/bundle/main.js";
