package whip

import (
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// pionLogger sends pion's logs to slog: its errors and warnings as
// warnings (a publisher's broken DTLS or RTCP is not recsink's error), the
// rest as debug, each with the pion scope.
type pionLogger struct {
	log *slog.Logger
}

func (f pionLogger) NewLogger(scope string) logging.LeveledLogger {
	return pionScope{f.log.With("pion", scope)}
}

type pionScope struct{ log *slog.Logger }

func (l pionScope) Trace(string)          {}
func (l pionScope) Tracef(string, ...any) {}
func (l pionScope) Debug(msg string)      { l.log.Debug("whip: " + msg) }
func (l pionScope) Debugf(format string, args ...any) {
	l.log.Debug("whip: " + fmt.Sprintf(format, args...))
}
func (l pionScope) Info(msg string) { l.log.Debug("whip: " + msg) }
func (l pionScope) Infof(format string, args ...any) {
	l.log.Debug("whip: " + fmt.Sprintf(format, args...))
}
func (l pionScope) Warn(msg string) { l.log.Warn("whip: " + msg) }
func (l pionScope) Warnf(format string, args ...any) {
	l.log.Warn("whip: " + fmt.Sprintf(format, args...))
}
func (l pionScope) Error(msg string) { l.log.Warn("whip: " + msg) }
func (l pionScope) Errorf(format string, args ...any) {
	l.log.Warn("whip: " + fmt.Sprintf(format, args...))
}
