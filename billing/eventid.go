package billing

import "strconv"

// ValidEventID reports whether id is a ledger event id, "<ms>-<seq>" with both
// parts decimal numbers that fit 64 bits: what every ledger accepts as a
// cursor (CompareEventIDs orders them).
func ValidEventID(id string) bool {
	for i := 0; i < len(id); i++ {
		if c := id[i]; c != '-' && (c < '0' || c > '9') {
			return false
		}
	}
	msPart, seqPart, ok := cutDash(id)
	if !ok || msPart == "" || seqPart == "" {
		return false
	}
	_, err1 := strconv.ParseUint(msPart, 10, 64)
	_, err2 := strconv.ParseUint(seqPart, 10, 64)
	return err1 == nil && err2 == nil
}

// cutDash splits id at its only '-'.
func cutDash(id string) (string, string, bool) {
	for i := 0; i < len(id); i++ {
		if id[i] == '-' {
			return id[:i], id[i+1:], true
		}
	}
	return "", "", false
}
