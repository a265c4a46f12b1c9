package messages

import (
	"regexp"
	"strings"
)

var (
	urlScheme = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.\-]*://`)
	// ?token=… and the like in a URL's query.
	urlSecretParam = regexp.MustCompile(`(?i)([?&;](?:token|access_token|auth|authorization|password|passwd|pass|pwd|secret|key|api_key|apikey|sig|signature|jwt|creds|credential|credentials)=)[^&;\s"'#<>\x60]*`)
)

// Redacted replaces the credentials of every URL in s (the userinfo of
// rtsp://user:pass@camera, of nats://token@host, and secret query parameters such as
// ?token=…) with "REDACTED", so log lines and status events can name sources and servers
// without leaking secrets. As URL parsers do, the userinfo ends at the authority's last '@'.
//
// Secret parameters go first: a value such as token=a:/b can hold the '/' that ends an
// authority, and redacting it afterwards would uncover a later '@' as userinfo, so a second
// Redacted would change the result again.
func Redacted(s string) string {
	s = urlSecretParam.ReplaceAllString(s, "${1}REDACTED")
	starts := urlScheme.FindAllStringIndex(s, -1)
	if len(starts) > 0 {
		var b strings.Builder
		prev := 0
		for k, loc := range starts {
			if loc[0] < prev {
				continue // inside a userinfo already redacted
			}
			// The authority runs to a path, a space or quote, or the next URL of a list.
			end := len(s)
			if k+1 < len(starts) {
				end = starts[k+1][0]
			}
			auth := s[loc[1]:end]
			if i := strings.IndexAny(auth, "/ \t\r\n\"'<>`"); i >= 0 {
				auth = auth[:i]
			}
			at := strings.LastIndexByte(auth, '@')
			if at < 0 {
				continue
			}
			b.WriteString(s[prev:loc[1]])
			b.WriteString("REDACTED")
			prev = loc[1] + at
		}
		b.WriteString(s[prev:])
		s = b.String()
	}
	return s
}
