package sandbox

import (
	"bytes"
	"embed"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"
)

// responses holds copies of IR's sample answers (see responses/SOURCE.md):
// go:embed cannot reach testdata/ from here.
//
//go:embed responses
var responses embed.FS

func sample(path string) []byte {
	b, err := responses.ReadFile("responses/" + path)
	if err != nil {
		// The names are constants checked by TestCannedResponsesExist.
		panic("sandbox: missing embedded response " + path)
	}
	return b
}

func sampleIfExists(path string) ([]byte, bool) {
	b, err := responses.ReadFile("responses/" + path)
	return b, err == nil
}

// Identifiers in the default samples, replaced with the request's.
const (
	sampleGSTIdentifier = "123039858"
	sampleEIIdentifier  = "123041607"
)

// serveReturns answers the returns service's operations.
func (s *Sandbox) serveReturns(w http.ResponseWriter, c *call, sc *soapCtx, f payloadFields) {
	switch sc.op.name {
	case "File":
		s.fileReturn(w, c, sc, f)
	case "RetrieveStatus":
		s.retrieveStatus(w, c, sc, f)
	case "RetrieveReturn":
		s.retrieveReturn(w, c, sc, f)
	case "Prepop":
		s.writeSOAP(w, c, StatusOK, prepopResponse(sc, f.Identifier))
	case "RetrieveFilingObligations":
		if f.MajorFormType == "GST" {
			s.writeSOAP(w, c, StatusOK, sample("returns-gst/body-gst-filingobligation-response.xml"))
			return
		}
		// IR's sample for EI: the operation is not offered for payday
		// returns.
		s.writeSOAP(w, c, StatusNotAvailableForForm, sample("returns-ei/body-ei-filingobligation-response.xml"))
	}
}

func naturalKey(f payloadFields) NaturalKey {
	return NaturalKey{
		Identifier:    f.Identifier,
		AccountType:   f.AccountType,
		PeriodEndDate: f.PeriodEndDate,
		MajorFormType: f.MajorFormType,
		PayDayDate:    f.PayDayDate,
	}
}

func (s *Sandbox) fileReturn(w http.ResponseWriter, c *call, sc *soapCtx, f payloadFields) {
	if f.MajorFormType == "GST" && !lastDayOfMonth(f.PeriodEndDate) {
		s.status(w, c, sc, StatusPeriodEndInvalid, msgPeriodEndInvalid, "")
		return
	}
	out := s.ledger.file(naturalKey(f), f, sc.env.Payload.Space, s.now())
	if out.code != StatusOK {
		s.status(w, c, sc, out.code, out.message, "")
		return
	}
	c.rec.amendment = out.filing.Amended
	s.timeline.filed(s.now())
	// The filing is committed; a lost response now leaves the client not
	// knowing it, exactly the case reconciliation exists for.
	switch kind := s.inject.afterCommit(); kind {
	case faultLoseResponse:
		c.rec.injected = kind
		reset(w)
		return
	case faultHangAfterCommit:
		c.rec.injected = kind
		hang(w, c.r)
		return
	}
	body := "                        <responseBody>\n" +
		"                            <gatewayId>" + esc(out.filing.GatewayID) + "</gatewayId>\n" +
		"                            <submissionKey>" + esc(out.filing.SubmissionKey) + "</submissionKey>\n" +
		"                        </responseBody>"
	s.status(w, c, sc, StatusOK, "", body)
}

// lastDayOfMonth reports whether date (YYYY-MM-DD, possibly with a zone
// suffix the XSD allows) is the last day of its month.
func lastDayOfMonth(date string) bool {
	if len(date) < 10 {
		return false
	}
	t, err := time.Parse("2006-01-02", date[:10])
	if err != nil {
		return false
	}
	return t.AddDate(0, 0, 1).Day() == 1
}

func (s *Sandbox) retrieveStatus(w http.ResponseWriter, c *call, sc *soapCtx, f payloadFields) {
	filings := s.ledger.lookup(naturalKey(f))
	if len(filings) == 0 {
		s.status(w, c, sc, StatusReturnNotFound, msgReturnNotFound, "")
		return
	}
	sort.SliceStable(filings, func(i, j int) bool { return filings[i].FiledAt.Before(filings[j].FiledAt) })
	var b strings.Builder
	b.WriteString("                        <responseBody>\n")
	if sc.ver == 1 {
		// ReturnCommon.v1: one status, of the latest version.
		last := filings[len(filings)-1]
		b.WriteString(`                            <status code="SUB">Submitted</status>` + "\n")
		b.WriteString("                            <submissionKey>" + esc(last.SubmissionKey) + "</submissionKey>\n")
	} else {
		// ReturnCommon.v2: a returnStatus per version filed.
		for _, fl := range filings {
			minor := fl.MinorFormType
			if minor == "" {
				minor = fl.Key.MajorFormType
			}
			b.WriteString("                            <returnStatus>\n")
			b.WriteString(`                                <status code="SUB">Submitted</status>` + "\n")
			b.WriteString("                                <receivedDate>" + fl.FiledAt.Format("2006-01-02") + "</receivedDate>\n")
			b.WriteString("                                <submissionKey>" + esc(fl.SubmissionKey) + "</submissionKey>\n")
			b.WriteString("                                <majorFormType>" + esc(fl.Key.MajorFormType) + "</majorFormType>\n")
			b.WriteString("                                <minorFormType>" + esc(minor) + "</minorFormType>\n")
			b.WriteString("                            </returnStatus>\n")
		}
	}
	b.WriteString("                        </responseBody>")
	s.status(w, c, sc, StatusOK, "", b.String())
}

func (s *Sandbox) retrieveReturn(w http.ResponseWriter, c *call, sc *soapCtx, f payloadFields) {
	filings := s.ledger.lookup(naturalKey(f))
	if len(filings) == 0 {
		s.status(w, c, sc, StatusReturnNotFound, msgReturnNotFound, "")
		return
	}
	sort.SliceStable(filings, func(i, j int) bool { return filings[i].FiledAt.Before(filings[j].FiledAt) })
	last := filings[len(filings)-1]
	nilReturn := "false"
	if last.NilReturn {
		nilReturn = "true"
	}
	var b strings.Builder
	if last.payloadNS == nsReturnEI {
		// As IR's EI sample: the submission key first, then the filed
		// form fields.
		b.WriteString(`                        <responseBody xmlns:xsi="` + nsXSI + `" xsi:type="r:RetrieveReturnResponseBodyType" xmlns:r="` + nsReturnEI + `">` + "\n")
		b.WriteString("                            <standardFields><isNilReturn>" + nilReturn + "</isNilReturn></standardFields>\n")
		b.WriteString("                            <r:formFields><r:submissionKey>" + esc(last.SubmissionKey) + "</r:submissionKey>")
		b.Write(last.formFields)
		b.WriteString("</r:formFields>\n")
	} else {
		b.WriteString(`                        <responseBody xmlns:xsi="` + nsXSI + `" xsi:type="r:RetrieveReturnResponseBodyType" xmlns:r="` + esc(last.payloadNS) + `">` + "\n")
		b.WriteString("                            <standardFields><isNilReturn>" + nilReturn + "</isNilReturn></standardFields>\n")
		b.WriteString(`                            <formFields xmlns="` + esc(last.payloadNS) + `">`)
		b.Write(last.formFields)
		b.WriteString("</formFields>\n")
	}
	b.WriteString("                        </responseBody>")
	s.status(w, c, sc, StatusOK, "", b.String())
}

// prepopResponse answers Prepop from IR's samples: the sample for the
// request's identifier when IR published one, else the default sample with
// the identifier replaced.
func prepopResponse(sc *soapCtx, identifier string) []byte {
	if sc.env.Payload.Space == nsReturnEI {
		if b, ok := sampleIfExists("returns-ei/body-ei-returnprepop-ird-" + safeName(identifier) + ".xml"); ok {
			return b
		}
		return bytes.ReplaceAll(sample("returns-ei/body-ei-returnprepop-response.xml"),
			[]byte(">"+sampleEIIdentifier), []byte(">"+esc(identifier)))
	}
	if b, ok := sampleIfExists("returns-gst/body-gst-returnprepop-resp" + safeName(identifier) + ".xml"); ok {
		return b
	}
	return bytes.ReplaceAll(sample("returns-gst/body-gst-returnprepop-response.xml"),
		[]byte(">"+sampleGSTIdentifier+"<"), []byte(">"+esc(identifier)+"<"))
}

// safeName keeps an identifier usable in an embedded file name lookup.
func safeName(s string) string {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return "-"
		}
	}
	return s
}

// cannedResponses maps the employment and intermediation operations to IR's
// success samples.
var cannedResponses = map[string]string{
	"employment/Create":                 "employment/body-employment-create-response.xml",
	"employment/Update":                 "employment/body-employment-update-response.xml",
	"employment/Terminate":              "employment/body-employment-terminate-response.xml",
	"employment/RetrieveList":           "employment/body-employment-retrievelist-response.xml",
	"intermediation/Link":               "intermediation/Link-response.xml",
	"intermediation/Delink":             "intermediation/Delink-response.xml",
	"intermediation/Update":             "intermediation/Update-response.xml",
	"intermediation/RetrieveClient":     "intermediation/RetrieveClient-response.xml",
	"intermediation/RetrieveClientList": "intermediation/RetriveClientList-response.xml",
}

// serveCanned answers employment and intermediation calls that passed
// validation and delegation with IR's success sample for the operation.
// Employment's Event has no sample; it answers an eventResponse with
// statusCode 0 and no events.
func (s *Sandbox) serveCanned(w http.ResponseWriter, c *call, sc *soapCtx) {
	if path, ok := cannedResponses[sc.op.label()]; ok {
		s.writeSOAP(w, c, StatusOK, sample(path))
		return
	}
	s.status(w, c, sc, StatusOK, "", "")
}

// checkCanned is used by tests: every embedded name resolves.
func checkCanned() error {
	names := []string{
		"returns-gst/body-gst-filingobligation-response.xml",
		"returns-ei/body-ei-filingobligation-response.xml",
		"returns-gst/body-gst-returnprepop-response.xml",
		"returns-ei/body-ei-returnprepop-response.xml",
	}
	for _, p := range cannedResponses {
		names = append(names, p)
	}
	for _, p := range names {
		if _, ok := sampleIfExists(p); !ok {
			return fmt.Errorf("missing embedded response %s", p)
		}
	}
	return nil
}
