package tasks

import (
	"fmt"
	"slices"
	"strings"

	"github.com/gatewayq/gatewayq/internal/xmltok"
)

// NaturalKey identifies a return the way IR does: IR offers no idempotency
// key, so this is what "the same return" means when deciding whether a File
// could be a duplicate.
type NaturalKey struct {
	Identifier    string `json:"identifier"`
	AccountType   string `json:"account_type"`
	PeriodEndDate string `json:"period_end_date"`
	MajorFormType string `json:"major_form_type"`
	// PayDayDate distinguishes payday (EI) returns within one period.
	PayDayDate string `json:"pay_day_date,omitempty"`
	// Amended is true for an amendment, which is a new version of the
	// return rather than a duplicate of the original.
	Amended bool `json:"amended,omitempty"`
}

// String renders the key for task IDs, logs and reports, e.g.
// "GST/123039858/GST/2017-07-31" or "EI2/123041607/PSO/2018-04-30/2018-04-10".
func (k NaturalKey) String() string {
	s := k.MajorFormType + "/" + k.Identifier + "/" + k.AccountType + "/" + k.PeriodEndDate
	if k.PayDayDate != "" {
		s += "/" + k.PayDayDate
	}
	if k.Amended {
		s += "/amended"
	}
	return s
}

// Equal compares two keys field by field.
func (k NaturalKey) Equal(o NaturalKey) bool { return k == o }

// ExtractNaturalKey reads the natural key out of a return payload (a
// fileRequest's fileHeader, or the header fields of a status or retrieve
// request). Elements are matched by local name, because IR's return
// versions put them in different namespaces (ReturnCommon.v1, v2, Common.v1, v2).
func ExtractNaturalKey(payload []byte) (NaturalKey, error) {
	var k NaturalKey
	// xmltok, not encoding/xml: this runs for every job of a bulk file,
	// and encoding/xml's Decoder made it a fifth of an enqueue's CPU.
	t := xmltok.New(payload)
	var (
		field  *string
		seen   = map[string]bool{}
		text   []byte
		inAmnd bool
		open   []xmltok.Name // what encoding/xml's Token checks: end tags match
	)
	for {
		kind, err := t.Next()
		if err != nil {
			return k, fmt.Errorf("payload is not well-formed XML: %v", err)
		}
		if kind == xmltok.EOF {
			break
		}
		switch kind {
		case xmltok.StartElement:
			n := t.Name()
			open = append(open, n)
			field = nil
			text = text[:0]
			name := string(n.Local)
			if seen[name] {
				continue // the first occurrence (the header) wins
			}
			switch name {
			case "identifier":
				field = &k.Identifier
			case "accountType":
				field = &k.AccountType
			case "periodEndDate":
				field = &k.PeriodEndDate
			case "majorFormType":
				field = &k.MajorFormType
			case "payDayDate":
				field = &k.PayDayDate
			case "isAmended":
				inAmnd = true
			}
			seen[name] = true
		case xmltok.CharData:
			if field != nil || inAmnd {
				text = append(text, t.Text()...)
			}
		case xmltok.EndElement:
			n := t.Name()
			if len(open) == 0 || !open[len(open)-1].Equal(n) {
				line, _ := t.Pos()
				return k, fmt.Errorf("payload is not well-formed XML: line %d: unexpected end element", line)
			}
			open = open[:len(open)-1]
			if field != nil {
				*field = strings.TrimSpace(string(text))
				field = nil
			}
			if inAmnd && string(n.Local) == "isAmended" {
				v := strings.TrimSpace(string(text))
				k.Amended = v == "true" || v == "1"
				inAmnd = false
			}
			text = text[:0]
		}
	}
	if len(open) > 0 {
		return k, fmt.Errorf("payload is not well-formed XML: unexpected end of document inside <%s>", open[len(open)-1].Local)
	}
	var missing []string
	for name, v := range map[string]string{"identifier": k.Identifier, "accountType": k.AccountType, "periodEndDate": k.PeriodEndDate, "majorFormType": k.MajorFormType} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return k, fmt.Errorf("payload has no %s, so the return's natural key is unknown", strings.Join(missing, ", "))
	}
	return k, nil
}
