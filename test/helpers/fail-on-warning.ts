// Process warnings (deprecations, listener leaks) usually point at real bugs: fail the test run on them.
process.on('warning', (warning) => {
  throw warning;
});
