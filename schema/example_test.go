package schema_test

import (
	"errors"
	"fmt"

	"github.com/gatewayq/gatewayq/schema"
)

func ExampleValidate() {
	payload := []byte(`<retrieveFilingObligationsRequest xmlns="urn:www.ird.govt.nz/GWS:types/ReturnCommon.v1"
    xmlns:cmn="urn:www.ird.govt.nz/GWS:types/Common.v1">
  <cmn:softwareProviderData>
    <cmn:softwareProvider>Acme Payroll</cmn:softwareProvider>
    <cmn:softwarePlatform>Linux</cmn:softwarePlatform>
    <cmn:softwareRelease>4.2</cmn:softwareRelease>
  </cmn:softwareProviderData>
  <cmn:identifier IdentifierValueType="IRD">123456789</cmn:identifier>
  <cmn:accountType>gst</cmn:accountType>
</retrieveFilingObligationsRequest>`)

	err := schema.Validate(payload)
	var ve *schema.ValidationError
	switch {
	case errors.Is(err, schema.ErrNotWellFormed):
		fmt.Println("not XML:", err)
	case errors.Is(err, schema.ErrUnknownElement):
		fmt.Println("not an IR payload:", err)
	case errors.As(err, &ve):
		for _, p := range ve.Problems {
			fmt.Printf("line %d: %s: %s\n", p.Line, p.Path, p.Message)
		}
	case err == nil:
		fmt.Println("valid")
	}
	// Output:
	// line 1: /retrieveFilingObligationsRequest: element retrieveFilingObligationsRequest is incomplete; missing majorFormType
	// line 9: /retrieveFilingObligationsRequest/accountType: "gst" does not match the pattern "[A-Z]{3}"
}
