// Not a definition file: the loader skips *.spec.ts (and *.test.ts), so importing it would fail the plan test.
throw new Error('loadRepo imported a test file');
