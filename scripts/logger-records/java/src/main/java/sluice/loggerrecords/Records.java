package sluice.loggerrecords;

import java.io.IOException;

/**
 * Writes a few JSON log records with one Java logging setup to stdout.
 *
 * <p>Usage: {@code Records logstash-logback|log4j2-ecs|log4j2-json}. The output
 * is committed as tests/fixtures/loggers/&lt;name&gt;.jsonl.
 */
public final class Records {
    private Records() {}

    static Exception paymentError() {
        return new IllegalStateException("charge declined", new IOException("connection refused"));
    }

    static void logback() {
        // Configured by src/main/resources/logback.xml (LogstashEncoder).
        org.slf4j.Logger log = org.slf4j.LoggerFactory.getLogger(Records.class);
        log.info("order placed");
        log.warn("stock running low");
        log.error("payment failed", paymentError());
    }

    static void log4j2(String configFile) {
        // Must be set before log4j2 initialises.
        System.setProperty("log4j2.configurationFile", configFile);
        org.apache.logging.log4j.Logger log = org.apache.logging.log4j.LogManager.getLogger(Records.class);
        log.info("order placed");
        log.warn("stock running low");
        log.error("payment failed", paymentError());
        org.apache.logging.log4j.LogManager.shutdown();
    }

    public static void main(String[] args) {
        String which = args.length == 1 ? args[0] : "";
        switch (which) {
            case "logstash-logback" -> logback();
            case "log4j2-ecs" -> log4j2("log4j2-ecs.xml");
            case "log4j2-json" -> log4j2("log4j2-json.xml");
            default -> {
                System.err.println("usage: Records logstash-logback|log4j2-ecs|log4j2-json");
                System.exit(2);
            }
        }
    }
}
