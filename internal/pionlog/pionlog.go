// Package pionlog adapts pion's logging.LoggerFactory to log/slog, for the
// TURN server and the WebRTC client alike.
package pionlog

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// Factory adapts pion's logging.LoggerFactory to slog. Messages below min
// are dropped before formatting: pion logs every packet at debug level.
type Factory struct {
	log *slog.Logger
	min slog.Level
}

func (f Factory) NewLogger(scope string) logging.LeveledLogger {
	return &pionLogger{log: f.log.With("pion", scope), min: f.min}
}

type pionLogger struct {
	log *slog.Logger
	min slog.Level
}

// levelTrace sits below slog's debug level.
const levelTrace = slog.LevelDebug - 4

func (l *pionLogger) enabled(level slog.Level) bool {
	return level >= l.min && l.log.Enabled(context.Background(), level)
}

func (l *pionLogger) out(level slog.Level, msg string) {
	if l.enabled(level) {
		l.log.Log(context.Background(), level, msg)
	}
}

func (l *pionLogger) outf(level slog.Level, format string, args ...any) {
	if l.enabled(level) {
		l.log.Log(context.Background(), level, fmt.Sprintf(format, args...))
	}
}

func (l *pionLogger) Trace(msg string)                  { l.out(levelTrace, msg) }
func (l *pionLogger) Tracef(format string, args ...any) { l.outf(levelTrace, format, args...) }
func (l *pionLogger) Debug(msg string)                  { l.out(slog.LevelDebug, msg) }
func (l *pionLogger) Debugf(format string, args ...any) { l.outf(slog.LevelDebug, format, args...) }
func (l *pionLogger) Info(msg string)                   { l.out(slog.LevelInfo, msg) }
func (l *pionLogger) Infof(format string, args ...any)  { l.outf(slog.LevelInfo, format, args...) }
func (l *pionLogger) Warn(msg string)                   { l.out(slog.LevelWarn, msg) }
func (l *pionLogger) Warnf(format string, args ...any)  { l.outf(slog.LevelWarn, format, args...) }
func (l *pionLogger) Error(msg string)                  { l.out(slog.LevelError, msg) }
func (l *pionLogger) Errorf(format string, args ...any) { l.outf(slog.LevelError, format, args...) }

// New returns a factory logging to log at min level and above (pion is very
// chatty below warn).
func New(log *slog.Logger, min slog.Level) Factory {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return Factory{log: log, min: min}
}
