//go:build !lean

package main

import (
	"log/slog"

	"github.com/personcluster/personcluster/messages"
)

// redactAttr is the loggers' ReplaceAttr: credentials in URLs (rtsp://user:pass@…,
// nats://token@…, ?token=…) never reach a log line, whichever attribute or message holds them.
func redactAttr(_ []string, a slog.Attr) slog.Attr {
	switch v := a.Value; v.Kind() {
	case slog.KindString:
		if s := v.String(); messages.Redacted(s) != s {
			a.Value = slog.StringValue(messages.Redacted(s))
		}
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			if s := x.Error(); messages.Redacted(s) != s {
				a.Value = slog.StringValue(messages.Redacted(s))
			}
		case interface{ String() string }:
			if s := x.String(); messages.Redacted(s) != s {
				a.Value = slog.StringValue(messages.Redacted(s))
			}
		}
	}
	return a
}
