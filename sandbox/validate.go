package sandbox

import (
	"errors"
	"fmt"
	"strings"

	"github.com/gatewayq/gatewayq/schema"
)

// defaultValidator checks payloads against IR's XSDs, embedded in package
// schema (the same schemas gatewayq validates with at enqueue).
func defaultValidator(doc []byte) error { return schema.Validate(doc) }

// validationMessage renders a validation failure as IR's statusCode 21
// errorMessage: "XML Request Failed Validation: [ValidationProblem { line=25,
// column=55, type=ERROR, message='...' }, ...]". Line numbers are the
// envelope's, because the payload handed to the validator keeps its place.
func validationMessage(err error) string {
	const prefix = "XML Request Failed Validation: "
	var ve *schema.ValidationError
	if !errors.As(err, &ve) {
		return prefix + err.Error()
	}
	parts := make([]string, 0, len(ve.Problems))
	for _, p := range ve.Problems {
		parts = append(parts, fmt.Sprintf("ValidationProblem { line=%d, column=%d, type=ERROR, message='%s' }",
			p.Line, p.Column, p.Message))
	}
	return prefix + "[" + strings.Join(parts, ", ") + "]"
}
