// The loader skips data/ folders, so importing this would fail the plan test.
throw new Error('loadRepo imported a file under data/');
