package tasks

import (
	"context"
	"fmt"

	"github.com/gatewayq/gatewayq/auth"
	"github.com/gatewayq/gatewayq/gatewayclient"
)

// Credentials resolves a job's Auth: an OAuth token set from the encrypted
// store, or the worker's own M2M signer. Either may be nil when the worker
// doesn't serve that mode; jobs asking for it then fail as a configuration
// error rather than loop.
type Credentials struct {
	Tokens *auth.Store
	M2M    *auth.M2MSigner
}

var _ CredentialSource = (*Credentials)(nil)

// For implements CredentialSource.
func (c *Credentials) For(_ context.Context, a Auth) (gatewayclient.Credentials, error) {
	switch a.Mode {
	case gatewayclient.AuthOAuth:
		if c.Tokens == nil {
			return nil, &gatewayclient.Error{Class: gatewayclient.ClassConfig, Message: "this worker has no token store configured"}
		}
		return c.Tokens.Credentials(a.TokenSet), nil
	case gatewayclient.AuthM2M:
		if c.M2M == nil {
			return nil, &gatewayclient.Error{Class: gatewayclient.ClassConfig, Message: "this worker has no M2M signing key configured (m2m.signing_key)"}
		}
		return c.M2M, nil
	}
	return nil, &gatewayclient.Error{Class: gatewayclient.ClassInvalid, Message: fmt.Sprintf("unknown auth mode %q", a.Mode)}
}
