package worker

import (
	"crypto/tls"
	"net/http"
	"time"

	"github.com/gatewayq/gatewayq/auth"
	"github.com/gatewayq/gatewayq/config"
	"github.com/gatewayq/gatewayq/gatewayclient"
)

// OAuthClient builds the client of IR's OAuth server the config names, or
// nil when oauth.client_id is empty (M2M only). The OAuth server is on the
// one-way TLS listener: the client certificate is not presented.
func OAuthClient(cfg *config.Config) (*auth.OAuthClient, error) {
	if cfg.OAuth.ClientID == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cfg.TLS.ServerName, InsecureSkipVerify: cfg.TLS.InsecureSkipVerify} //nolint:gosec // refused outside the sandbox profile by config.Validate
	if cfg.TLS.CABundle != "" {
		pool, err := gatewayclient.LoadCABundle(cfg.TLS.CABundle)
		if err != nil {
			return nil, err
		}
		tc.RootCAs = pool
	}
	c := &auth.OAuthClient{
		BaseURL:        cfg.OAuth.BaseURL,
		AuthorizePath:  cfg.OAuth.AuthorizePath,
		TokenPath:      cfg.OAuth.TokenPath,
		IntrospectPath: cfg.OAuth.IntrospectPath,
		RevokePath:     cfg.OAuth.RevokePath,
		ClientID:       cfg.OAuth.ClientID,
		ClientSecret:   cfg.OAuth.ClientSecret,
		HTTPClient: &http.Client{
			Timeout:   30 * time.Second,
			Transport: &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: false, MaxIdleConnsPerHost: 4},
			// IR's authorize endpoint redirects to the DSP; the token
			// endpoints never should.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}
