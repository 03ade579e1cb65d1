'use strict';
// Writes a few JSON log records with one Node logging library, chosen by the
// first argument (pino, winston or bunyan), to stdout. The output is committed
// as tests/fixtures/loggers/<library>.jsonl.

function paymentError() {
  return new Error('charge declined');
}

function runPino() {
  const pino = require('pino');
  const logger = pino();
  logger.info('order placed');
  logger.warn('stock running low');
  logger.error(paymentError());
  const child = logger.child({ name: 'checkout' });
  child.info('order shipped');
  child.error(paymentError(), 'payment failed');
}

function runWinston() {
  const { createLogger, format, transports } = require('winston');
  const logger = createLogger({
    level: 'info',
    format: format.combine(format.timestamp(), format.errors({ stack: true }), format.json()),
    defaultMeta: { service: 'checkout' },
    transports: [new transports.Console()],
  });
  logger.info('order placed');
  logger.warn('stock running low');
  logger.error(paymentError());
}

function runBunyan() {
  const bunyan = require('bunyan');
  const logger = bunyan.createLogger({ name: 'checkout', src: true });
  logger.info('order placed');
  logger.warn('stock running low');
  logger.error(paymentError(), 'payment failed');
}

const runners = { pino: runPino, winston: runWinston, bunyan: runBunyan };
const run = runners[process.argv[2]];
if (!run) {
  process.stderr.write('usage: node records.js pino|winston|bunyan\n');
  process.exit(2);
}
run();
