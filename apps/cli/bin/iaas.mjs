#!/usr/bin/env node
// The `iaas` command. A committed shim, so npm links it at install time even before the build.
import "../dist/main.js";
