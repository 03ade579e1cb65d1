// Command logger-records writes a few JSON log records with one Go logging
// library, chosen by the first argument (slog, zap, zerolog or logrus), to
// stdout. The output is committed as tests/fixtures/loggers/<library>.jsonl.
package main

import (
	"fmt"
	"log/slog"
	"os"

	pkgerrors "github.com/pkg/errors"
	"github.com/rs/zerolog"
	zlpkgerrors "github.com/rs/zerolog/pkgerrors"
	"github.com/sirupsen/logrus"
	"go.uber.org/zap"
)

func runSlog() {
	logger := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{AddSource: true}))
	logger.Info("order placed")
	logger.Warn("stock running low")
	err := fmt.Errorf("charge declined: %w", os.ErrDeadlineExceeded)
	logger.Error("payment failed", slog.Any("error", err))
}

func runZap() {
	// zap.NewProduction() writes to stderr; the same production config is
	// built here with stdout as the only output.
	cfg := zap.NewProductionConfig()
	cfg.OutputPaths = []string{"stdout"}
	cfg.ErrorOutputPaths = []string{"stdout"}
	logger, err := cfg.Build()
	if err != nil {
		panic(err)
	}
	defer logger.Sync()
	logger.Info("order placed")
	logger.Warn("stock running low")
	named := logger.Named("checkout")
	named.Info("order shipped")
	named.Error("payment failed", zap.Error(fmt.Errorf("charge declined: %w", os.ErrDeadlineExceeded)))
}

func runZerolog() {
	zerolog.ErrorStackMarshaler = zlpkgerrors.MarshalStack
	logger := zerolog.New(os.Stdout).With().Timestamp().Caller().Logger()
	logger.Info().Msg("order placed")
	logger.Warn().Msg("stock running low")
	err := pkgerrors.Wrap(pkgerrors.New("connection refused"), "charge declined")
	logger.Error().Stack().Err(err).Msg("payment failed")
}

func runLogrus() {
	logger := logrus.New()
	logger.SetOutput(os.Stdout)
	logger.SetFormatter(&logrus.JSONFormatter{})
	logger.SetReportCaller(true)
	logger.Info("order placed")
	logger.Warn("stock running low")
	logger.WithError(fmt.Errorf("charge declined: %w", os.ErrDeadlineExceeded)).Error("payment failed")
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: logger-records slog|zap|zerolog|logrus")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "slog":
		runSlog()
	case "zap":
		runZap()
	case "zerolog":
		runZerolog()
	case "logrus":
		runLogrus()
	default:
		fmt.Fprintln(os.Stderr, "unknown library:", os.Args[1])
		os.Exit(2)
	}
}
