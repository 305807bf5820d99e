package schema

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// irInvalidSamples are the samples IR ships that do not conform to its own
// schemas, with the path of the first problem. libxml2 agrees on each (the
// test asserts it).
var irInvalidSamples = map[string]string{
	// IR's deliberate schema-error example: periodEndDate 1800-01-02 is not
	// above DateType's minExclusive 1850-01-01.
	"returns-gst/body-gst-returnfile-schema-error-request.xml": "/fileRequest/fileHeader/periodEndDate",
	// updateResponse is declared as cmn:StandardResponseType (statusMessage
	// only) but the sample carries retrieveClientResponse's clientID and link.
	"intermediation/Update-response.xml": "/updateResponse/clientID",
	// A ReturnCommon.v1 response whose body names xsi:type from ReturnEI.v1,
	// a schema IR no longer publishes (EI is v2 now).
	"returns-ei/body-ei-retrievereturn-ird-123094018.xml": "/retrieveReturnResponse/responseBody/@xsi:type",
}

func TestSamples(t *testing.T) {
	t.Parallel()
	samples := loadSamples(t)
	// 65 sample files, one of which holds a request and a response.
	if len(samples) < 66 {
		t.Fatalf("extracted %d payloads, want at least 66", len(samples))
	}
	seenInvalid := 0
	for _, s := range samples {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			err := Validate(s.payload)
			wantPath, invalid := irInvalidSamples[s.name]
			if invalid {
				var ve *ValidationError
				if !errors.As(err, &ve) {
					t.Fatalf("Validate = %v, want a *ValidationError", err)
				}
				if ve.Problems[0].Path != wantPath {
					t.Errorf("first problem %v, want path %s", ve.Problems[0], wantPath)
				}
			} else if err != nil {
				t.Errorf("Validate: %v", err)
			}
			assertAgrees(t, s.payload, irXSD(s.service), err)
		})
		if _, ok := irInvalidSamples[s.name]; ok {
			seenInvalid++
		}
	}
	if seenInvalid != len(irInvalidSamples) {
		t.Errorf("found %d of the %d known-invalid samples", seenInvalid, len(irInvalidSamples))
	}
}

func readSample(t *testing.T, svc, file string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(samplesRoot, svc, "samples", file))
	if err != nil {
		t.Fatal(err)
	}
	payloads, err := extractPayloads(data)
	if err != nil || len(payloads) == 0 {
		t.Fatalf("%s: %v (%d payloads)", file, err, len(payloads))
	}
	return string(payloads[0])
}

const xsiDecl = ` xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"`

// TestMutations corrupts IR's samples in targeted ways. Each mutation must
// be judged as libxml2 judges it, and report its first problem at wantPath
// ("" for mutations that must stay valid).
func TestMutations(t *testing.T) {
	t.Parallel()
	const (
		gst    = "body-gst-returnfile-request-GST101A.xml"
		create = "body-employment-create-request.xml"
		ei     = "body-ei-returnfile-request.xml"
		clist  = "RetriveClientList-response.xml"
		fresp  = "body-gst-returnfile-response.xml"
	)
	const (
		hdr  = "/fileRequest/fileHeader"
		std  = "/fileRequest/fileBody/standardFields"
		amd  = std + "/amendmentRequest"
		ff   = "/fileRequest/fileBody/formFields"
		gsf  = ff + "/gstSpecificFields"
		body = "/createRequest/createBody"
	)
	tests := []struct {
		name     string
		svc      string
		file     string
		old, new string
		wantPath string
		// libxml2Bug, when set, says why libxml2 is known to judge this
		// document differently from the XSD specification (and Xerces, which
		// IR's gateway runs); the test then asserts that libxml2 disagrees.
		libxml2Bug string
	}{
		{"date below minExclusive", "returns-gst", gst, "2017-07-31", "1800-01-02", hdr + "/periodEndDate", ""},
		{"date on minExclusive", "returns-gst", gst, "2017-07-31", "1850-01-01", hdr + "/periodEndDate", ""},
		{"date just above minExclusive", "returns-gst", gst, "2017-07-31", "1850-01-02", "", ""},
		{"impossible date", "returns-gst", gst, "2017-07-31", "2017-02-30", hdr + "/periodEndDate", ""},
		{"date in wrong format", "returns-gst", gst, "2017-07-31", "31/07/2017", hdr + "/periodEndDate", ""},
		{"date with surrounding whitespace", "returns-gst", gst, "2017-07-31", "\n  2017-07-31 \t", "",
			"libxml2 does not collapse whitespace in xsd:date values, though the type's whiteSpace facet is collapse"},
		{"date with timezone", "returns-gst", gst, "2017-07-31", "2017-07-31+12:00", "", ""},
		{"IRD number with a letter", "employment", create, "<emp1:employeeIRD>123456789", "<emp1:employeeIRD>12345678X", body + "/employeeIRD", ""},
		{"IRD number too short", "employment", create, "<emp1:employeeIRD>123456789", "<emp1:employeeIRD>12345678", body + "/employeeIRD", ""},
		{"fixed country violated", "employment", create, "<com:country>NZL", "<com:country>NZX", body + "/employeeAddress/nzPostAddress/country", ""},
		{"email pattern", "employment", create, "a@b.com", "not-an-email", body + "/employeeEmailAddress", ""},
		{"too many tax codes", "employment", create, "<emp1:taxCode>M</emp1:taxCode>", strings.Repeat("<emp1:taxCode>M</emp1:taxCode>", 5), body + "/taxCodes/taxCode[5]", ""},
		{"four tax codes", "employment", create, "<emp1:taxCode>M</emp1:taxCode>", strings.Repeat("<emp1:taxCode>M</emp1:taxCode>", 4), "", ""},
		{"choice: person name too long", "employment", create, ">firstName<", ">" + strings.Repeat("n", 101) + "<", body + "/employeeName/nameFirst", ""},
		{"missing required element", "returns-gst", gst, "<ret2:majorFormType>GST</ret2:majorFormType>", "", hdr + "/minorFormType", ""},
		{"missing last required element", "returns-gst", gst, "<ret1:totalGST>3093.36</ret1:totalGST>", "", gsf, ""},
		{"extra unknown element", "returns-gst", gst, "<ret2:majorFormType>", "<ret2:bogus>1</ret2:bogus><ret2:majorFormType>", hdr + "/bogus", ""},
		{"element in wrong namespace", "returns-gst", gst, "<ret2:periodEndDate>2017-07-31</ret2:periodEndDate>", "<ret1:periodEndDate>2017-07-31</ret1:periodEndDate>", hdr + "/periodEndDate", ""},
		{"elements out of order", "returns-gst", gst, "<ret2:isNilReturn>false</ret2:isNilReturn>\n                                <ret2:isFinalReturn>true</ret2:isFinalReturn>", "<ret2:isFinalReturn>true</ret2:isFinalReturn><ret2:isNilReturn>false</ret2:isNilReturn>", std + "/isFinalReturn", ""},
		{"too-long string", "returns-gst", gst, ">SoftwareProvider<", ">" + strings.Repeat("S", 51) + "<", hdr + "/softwareProviderData/softwareProvider", ""},
		{"empty string below minLength", "returns-gst", gst, ">SoftwareProvider<", "><", hdr + "/softwareProviderData/softwareProvider", ""},
		{"bad decimal", "returns-gst", gst, "<ret1:totalSales>1000.00", "<ret1:totalSales>1,000.00", gsf + "/totalSales", ""},
		{"too many fraction digits", "returns-gst", gst, "<ret1:totalGST>3093.36", "<ret1:totalGST>3093.365", gsf + "/totalGST", ""},
		{"trailing fraction zeros are fine", "returns-gst", gst, "<ret1:totalGST>3093.36", "<ret1:totalGST>3093.36000", "", ""},
		{"negative where MoneyTypePositive", "returns-gst", gst, "<ret1:totalSales>1000.00", "<ret1:totalSales>-1.00", gsf + "/totalSales", ""},
		{"negative allowed in MoneyType", "returns-gst", gst, "<ret1:totalGST>3093.36", "<ret1:totalGST>-3093.36", "", ""},
		{"money above maxInclusive", "returns-gst", gst, "<ret1:totalGST>3093.36", "<ret1:totalGST>10000000000000.00", gsf + "/totalGST", ""},
		{"value split by a comment", "returns-gst", gst, "<ret1:totalSales>1000.00", "<ret1:totalSales>10<!-- c -->00.00", "", ""},
		{"bad boolean", "returns-gst", gst, "<ret2:isNilReturn>false", "<ret2:isNilReturn>no", std + "/isNilReturn", ""},
		{"boolean as digit", "returns-gst", gst, "<ret2:isNilReturn>false", "<ret2:isNilReturn>0", "", ""},
		{"missing required attribute", "returns-gst", gst, ` IdentifierValueType="ACCIRD"`, "", hdr + "/identifier/@IdentifierValueType", ""},
		{"attribute too long", "returns-gst", gst, `IdentifierValueType="ACCIRD"`, `IdentifierValueType="ACCIRDX"`, hdr + "/identifier/@IdentifierValueType", ""},
		{"unknown attribute", "returns-gst", gst, "<ret2:periodEndDate>", `<ret2:periodEndDate foo="1">`, hdr + "/periodEndDate/@foo", ""},
		{"text in element-only content", "returns-gst", gst, "<ret2:periodEndDate>", "hello<ret2:periodEndDate>", hdr, ""},
		{"child in simple content", "returns-gst", gst, "<ret2:periodEndDate>2017-07-31", "<ret2:periodEndDate><ret2:x/>2017-07-31", hdr + "/periodEndDate/x", ""},
		{"wrong xsi:type", "returns-gst", gst, `xsi:type="ret1:FormFieldsType"`, `xsi:type="ret1:GSTFieldsType"`, ff + "/@xsi:type", ""},
		{"unknown xsi:type", "returns-gst", gst, `xsi:type="ret1:FormFieldsType"`, `xsi:type="ret1:NoSuchType"`, ff + "/@xsi:type", ""},
		{"abstract type without xsi:type", "returns-gst", gst, `xsi:type="ret1:FormFieldsType"`, "", ff, ""},
		{"amend reason pattern", "returns-gst", gst, "<ret2:amendReason/>", "<ret2:amendReason>abc</ret2:amendReason>", amd + "/amendReason", ""},
		{"amend reason token collapsed", "returns-gst", gst, "<ret2:amendReason/>", "<ret2:amendReason>  ABC  </ret2:amendReason>", "", ""},
		{"nil on nillable element", "returns-gst", gst, "<ret2:amendReason/>", "<ret2:amendReason" + xsiDecl + ` xsi:nil="true"/>`, "", ""},
		{"nil element with content", "returns-gst", gst, "<ret2:amendReason/>", "<ret2:amendReason" + xsiDecl + ` xsi:nil="true">ABC</ret2:amendReason>`, amd + "/amendReason", ""},
		{"nil on non-nillable element", "returns-gst", gst, "<ret2:isAmended>false</ret2:isAmended>", "<ret2:isAmended" + xsiDecl + ` xsi:nil="true"/>`, amd + "/isAmended", ""},
		{"choice branches mixed", "returns-gst", gst, "</ret1:debitAdjustments>", "<ret1:totalDebitAdjustment>1.00</ret1:totalDebitAdjustment></ret1:debitAdjustments>", gsf + "/debitAdjustments/totalDebitAdjustment", ""},
		{"choice second branch", "returns-gst", gst, "<ret1:privateUsePeriodAdjustment>", "<ret1:totalDebitAdjustment>1.00</ret1:totalDebitAdjustment><ret1:privateUsePeriodAdjustment>", gsf + "/debitAdjustments/privateUsePeriodAdjustment", ""},
		{"EI second employee missing irdNumber", "returns-ei", ei, "<ret1:irdNumber>123037155</ret1:irdNumber>", "", "/fileRequest/fileBody/formFields/employeeFields/employee[2]/employeeName", ""},
		{"integer with a fraction", "returns-gst", fresp, "<statusCode>0<", "<statusCode>0.5<", "/fileResponse/statusMessage/statusCode", ""},
		{"integer with a sign", "returns-gst", fresp, "<statusCode>0<", "<statusCode>+0<", "", ""},
		{"attribute enumeration-like pattern", "intermediation", clist, `clientListType="PAYCLI"`, `clientListType="paycli"`, "/retrieveClientListResponse/agency/clientList/@clientListType", ""},
		{"attribute length", "intermediation", clist, `clientListType="PAYCLI"`, `clientListType="PAYCL"`, "/retrieveClientListResponse/agency/clientList/@clientListType", ""},
		{"attribute boolean", "intermediation", clist, `hasRefundAccount="true"`, `hasRefundAccount="yes"`, "/retrieveClientListResponse/agency/clientList/@hasRefundAccount", ""},
		{"missing required attribute on repeated element", "intermediation", clist, ` hasRefundAccount="true"`, "", "/retrieveClientListResponse/agency/clientList/@hasRefundAccount", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			orig := readSample(t, tc.svc, tc.file)
			doc := strings.Replace(orig, tc.old, tc.new, 1)
			if doc == orig {
				t.Fatalf("mutation did not apply: %q not in %s", tc.old, tc.file)
			}
			err := Validate([]byte(doc))
			if tc.wantPath == "" {
				if err != nil {
					t.Errorf("Validate: %v", err)
				}
			} else {
				var ve *ValidationError
				if !errors.As(err, &ve) {
					t.Fatalf("Validate = %v, want a *ValidationError", err)
				}
				if got := ve.Problems[0].Path; !strings.HasPrefix(got, tc.wantPath) {
					t.Errorf("first problem %v, want path %s", ve.Problems[0], tc.wantPath)
				}
			}
			if tc.libxml2Bug == "" {
				assertAgrees(t, []byte(doc), irXSD(tc.svc), err)
				return
			}
			if valid, out, ok := xmllintVerdict(t, []byte(doc), irXSD(tc.svc)); ok && valid == (err == nil) {
				t.Errorf("xmllint now agrees with us (valid=%v); remove the libxml2Bug note %q\n%s", valid, tc.libxml2Bug, out)
			}
		})
	}
}

// irXSD is the package-relative path of the embedded schema for a service.
func irXSD(service string) string { return filepath.Join("xsd", serviceXSD[service]) }
