package hac

import (
	"bytes"
	"runtime"
)

// A case file is nearly all its "points" member. Handed the whole text, the
// JSON decoder first walks the member to find where it ends (sonic's
// skip: 0.15 s, on one core, for the 134 MB of a 10k × 640 case) and only
// then calls pointsJSON's parser on it. decodeCaseFast finds the member
// itself — a walk of the object's other members, which are small, and of
// the points' rows by their closing brackets (bytes.IndexByte: SIMD) — and
// parses it on every core while the decoder reads the rest, with the points
// replaced by null. Where anything is not as expected (not an object, an
// escaped or repeated key, points not in the plain form) it reports false
// and the caller decodes the whole text the ordinary way, which also gives
// the ordinary errors: the fast path never changes an answer.

// decodeCaseFast decodes text, a case object, into cj; ok is false where it
// cannot (cj is then untouched).
func decodeCaseFast(text []byte, cj *caseJSON) (ok bool) {
	start, end, found := findPoints(text)
	if !found {
		return false
	}
	rest := make([]byte, 0, start+len("null")+len(text)-end)
	rest = append(append(append(rest, text[:start]...), "null"...), text[end:]...)

	var rows [][]float64
	parsed := make(chan bool, 1)
	go func() {
		var ok bool
		rows, ok = parsePoints(text[start:end], runtime.GOMAXPROCS(0), parallelPointsMin)
		parsed <- ok
	}()
	var other caseJSON
	errRest := decodeJSONText(rest, &other)
	if !<-parsed || errRest != nil {
		return false
	}
	other.Points = rows
	*cj = other
	return true
}

// findPoints returns the span text[start:end] of the value of the only
// top-level member of the object text whose key is "points" (any case, as
// the decoder matches keys), where that value looks like an array of arrays
// without nested brackets. found is false for anything else.
func findPoints(text []byte) (start, end int, found bool) {
	i := skipSpace(text, 0)
	if i == len(text) || text[i] != '{' {
		return 0, 0, false
	}
	i = skipSpace(text, i+1)
	for i < len(text) && text[i] != '}' {
		keyEnd, plain := stringEnd(text, i)
		if keyEnd < 0 || !plain {
			return 0, 0, false
		}
		isPoints := bytes.EqualFold(text[i+1:keyEnd-1], []byte("points"))
		i = skipSpace(text, keyEnd)
		if i == len(text) || text[i] != ':' {
			return 0, 0, false
		}
		i = skipSpace(text, i+1)
		var valueEnd int
		if isPoints {
			if found {
				return 0, 0, false // a repeated key: the decoder keeps the last
			}
			valueEnd = rowsEnd(text, i)
			start, end, found = i, valueEnd, true
		} else {
			valueEnd = valueEndAt(text, i)
		}
		if valueEnd < 0 {
			return 0, 0, false
		}
		i = skipSpace(text, valueEnd)
		if i < len(text) && text[i] == ',' {
			i = skipSpace(text, i+1)
		}
	}
	return start, end, found
}

// rowsEnd is the end of the array of arrays starting at text[i], found by
// its rows' closing brackets, or −1. Rows are not looked into: parsePoints
// rejects any that are not plain numbers, so a wrong end is never used.
func rowsEnd(text []byte, i int) int {
	if i == len(text) || text[i] != '[' {
		return -1
	}
	i = skipSpace(text, i+1)
	if i < len(text) && text[i] == ']' {
		return i + 1
	}
	for {
		if i == len(text) || text[i] != '[' {
			return -1
		}
		j := bytes.IndexByte(text[i:], ']')
		if j < 0 {
			return -1
		}
		i = skipSpace(text, i+j+1)
		switch {
		case i == len(text):
			return -1
		case text[i] == ']':
			return i + 1
		case text[i] != ',':
			return -1
		}
		i = skipSpace(text, i+1)
	}
}

// stringEnd is the end of the JSON string starting at text[i] (after its
// closing quote), or −1; plain is false where it has escapes or bytes
// outside ASCII (a key such as "pointſ" is "points" to encoding/json's
// case folding but not to sonic's: such texts take the ordinary path).
func stringEnd(text []byte, i int) (end int, plain bool) {
	if i == len(text) || text[i] != '"' {
		return -1, false
	}
	plain = true
	for i++; i < len(text); i++ {
		switch c := text[i]; {
		case c == '"':
			return i + 1, plain
		case c == '\\':
			plain = false
			i++
		case c >= 0x80:
			plain = false
		}
	}
	return -1, false
}

// valueEndAt is the end of the JSON value starting at text[i], or −1: a
// string, an object or array (brackets counted outside strings), or a
// literal or number (up to the next delimiter). Values are not validated:
// the decoder does that when it reads the rest.
func valueEndAt(text []byte, i int) int {
	if i == len(text) {
		return -1
	}
	switch text[i] {
	case '"':
		end, _ := stringEnd(text, i)
		return end
	case '{', '[':
		depth := 0
		for ; i < len(text); i++ {
			switch text[i] {
			case '"':
				end, _ := stringEnd(text, i)
				if end < 0 {
					return -1
				}
				i = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return -1
	}
	for ; i < len(text); i++ {
		switch c := text[i]; {
		case c == ',' || c == '}' || c == ']' || isSpace(c):
			return i
		}
	}
	return i
}
