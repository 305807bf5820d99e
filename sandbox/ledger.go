package sandbox

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Status codes the sandbox answers with (IR's, see DESIGN.md's table).
const (
	StatusOK                    = 0
	StatusAuthFailed            = 1   // token invalid or expired
	StatusTokenMissing          = 2   // no token
	StatusUnauthorisedDelegate  = 4   // myIR permissions don't cover the account
	StatusValidationFailed      = 21  // payload failed IR's XSD
	StatusNotAvailableForForm   = 106 // operation not available for the major form type
	StatusDuplicateReturn       = 107 // an original is already filed
	StatusPeriodEndInvalid      = 131 // the sandbox's GST rule (see package doc)
	StatusDuplicatePayload      = 160 // same payday payload within the hour
	StatusReturnNotFound        = 104 // the sandbox's choice for "nothing filed" (see package doc)
	duplicatePayloadWindow      = time.Hour
	msgUnauthorisedDelegation   = "Unauthorised Delegation"
	msgDuplicateReturn          = "A return has already been filed for this period; file an amendment instead"
	msgDuplicatePayload         = "The same payday return was received within the last hour"
	msgPeriodEndInvalid         = "Period end date is not valid for the account"
	msgReturnNotFound           = "No return has been filed for this account and period"
	msgAmendmentWithoutOriginal = "No return has been filed for this account and period to amend"
)

// NaturalKey is a return's identity at IR, which offers no idempotency key.
type NaturalKey struct {
	Identifier    string
	AccountType   string
	PeriodEndDate string
	MajorFormType string
	PayDayDate    string // EI only
}

// String is the key's form in Stats.Originals:
// identifier|accountType|periodEndDate|majorFormType[|payDayDate].
func (k NaturalKey) String() string {
	s := k.Identifier + "|" + k.AccountType + "|" + k.PeriodEndDate + "|" + k.MajorFormType
	if k.PayDayDate != "" {
		s += "|" + k.PayDayDate
	}
	return s
}

// Filing is one accepted version of a return.
type Filing struct {
	Key           NaturalKey
	Version       int // 1 = the original, 2.. = amendments
	Amended       bool
	GatewayID     string
	SubmissionKey string
	FiledAt       time.Time
	MinorFormType string
	NilReturn     bool
	formFields    []byte
	hash          [sha256.Size]byte
	payloadNS     string // the fileRequest's namespace (GST v1 / EI v2)
}

// ledger is the returns ledger. Every method holds mu for its whole
// decision, so a concurrent burst of the same return yields exactly one
// accepted original.
type ledger struct {
	mu        sync.Mutex
	returns   map[NaturalKey][]*Filing
	originals map[string]int
	gwSeq     uint64
	subSeq    uint64
}

func newLedger() *ledger {
	var b [8]byte
	_, _ = rand.Read(b[:])
	r := binary.BigEndian.Uint64(b[:])
	return &ledger{
		returns:   map[NaturalKey][]*Filing{},
		originals: map[string]int{},
		// Random starting points so two sandbox runs don't hand out the
		// same identifiers (a client must not treat them as global).
		gwSeq:  36*36*36*36*36*36*36 + r%(1<<40),
		subSeq: 100_000_000 + r%800_000_000,
	}
}

// fileOutcome is the ledger's decision on a File.
type fileOutcome struct {
	code    int
	message string
	filing  *Filing
}

// file decides on one File of a validated payload.
func (l *ledger) file(key NaturalKey, f payloadFields, payloadNS string, now time.Time) fileOutcome {
	l.mu.Lock()
	defer l.mu.Unlock()
	versions := l.returns[key]
	if key.PayDayDate != "" || payloadNS == nsReturnEI {
		for _, v := range versions {
			if v.hash == f.Hash && now.Sub(v.FiledAt) < duplicatePayloadWindow {
				return fileOutcome{code: StatusDuplicatePayload, message: msgDuplicatePayload}
			}
		}
	}
	if !f.IsAmended && len(versions) > 0 {
		return fileOutcome{code: StatusDuplicateReturn, message: msgDuplicateReturn}
	}
	if f.IsAmended && len(versions) == 0 {
		return fileOutcome{code: StatusReturnNotFound, message: msgAmendmentWithoutOriginal}
	}
	l.gwSeq++
	l.subSeq++
	filing := &Filing{
		Key:           key,
		Version:       len(versions) + 1,
		Amended:       f.IsAmended,
		GatewayID:     formatGatewayID(l.gwSeq),
		SubmissionKey: strconv.FormatUint(l.subSeq, 10),
		FiledAt:       now,
		MinorFormType: f.MinorFormType,
		NilReturn:     f.IsNilReturn,
		formFields:    f.FormFields,
		hash:          f.Hash,
		payloadNS:     payloadNS,
	}
	l.returns[key] = append(versions, filing)
	if !f.IsAmended {
		l.originals[key.String()]++
	}
	return fileOutcome{code: StatusOK, filing: filing}
}

// lookup returns the versions filed for key, oldest first. With no
// payDayDate in an EI request, every payday of the period matches.
func (l *ledger) lookup(key NaturalKey) []*Filing {
	l.mu.Lock()
	defer l.mu.Unlock()
	if v, ok := l.returns[key]; ok {
		return append([]*Filing(nil), v...)
	}
	if key.PayDayDate != "" {
		return nil
	}
	var out []*Filing
	for k, v := range l.returns {
		if k.Identifier == key.Identifier && k.AccountType == key.AccountType &&
			k.PeriodEndDate == key.PeriodEndDate && k.MajorFormType == key.MajorFormType {
			out = append(out, v...)
		}
	}
	return out
}

// snapshot copies the originals table and counts keys with more than one
// accepted original (which the ledger's rules make impossible: the counter
// exists so tests and benchmarks can assert it).
func (l *ledger) snapshot() (map[string]int, int, int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]int, len(l.originals))
	dup := 0
	for k, v := range l.originals {
		out[k] = v
		if v > 1 {
			dup++
		}
	}
	var filed int64
	for _, v := range l.returns {
		filed += int64(len(v))
	}
	return out, dup, filed
}

// formatGatewayID renders n in IR's gatewayId shape: 13 upper-case base-36
// characters grouped 4-4-4-1, e.g. "0000 002G M22W 9".
func formatGatewayID(n uint64) string {
	s := strings.ToUpper(strconv.FormatUint(n, 36))
	if len(s) < 13 {
		s = strings.Repeat("0", 13-len(s)) + s
	}
	s = s[len(s)-13:]
	return s[0:4] + " " + s[4:8] + " " + s[8:12] + " " + s[12:13]
}
