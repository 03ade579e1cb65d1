"""Write a few JSON log records with one Python logging library to stdout.

Usage: python records.py structlog|python-json-logger

The output is committed as tests/fixtures/loggers/<library>.jsonl.
"""

import logging
import sys


def charge():
    raise ConnectionError("charge declined")


def run_structlog():
    import structlog

    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    log = structlog.get_logger()
    log.info("order placed")
    log.warning("stock running low")
    try:
        charge()
    except ConnectionError:
        log.exception("payment failed")


def run_python_json_logger():
    from pythonjsonlogger.json import JsonFormatter

    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(module)s "
            "%(funcName)s %(lineno)d %(process)d %(threadName)s"
        )
    )
    log = logging.getLogger("checkout")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    log.info("order placed")
    log.warning("stock running low")
    try:
        charge()
    except ConnectionError:
        log.exception("payment failed")


RUNNERS = {"structlog": run_structlog, "python-json-logger": run_python_json_logger}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in RUNNERS:
        sys.stderr.write("usage: python records.py structlog|python-json-logger\n")
        sys.exit(2)
    RUNNERS[sys.argv[1]]()
