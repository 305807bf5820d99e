package gatewayclient_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/gatewayq/gatewayq/gatewayclient"
)

// bearer is the simplest Credentials: a fixed OAuth access token. Real
// callers use auth.Store.Credentials.
type bearer string

func (b bearer) AuthorizationHeader(context.Context) (string, error) {
	return "Bearer " + string(b), nil
}

func ExampleClient_Do() {
	// A stand-in for IR's returns service, answering a File as IR does.
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/soap+xml; charset=utf-8")
		fmt.Fprint(w, `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope">
  <s:Header><Action xmlns="http://www.w3.org/2005/08/addressing">https://services.ird.govt.nz/GWS/Returns/Return/FileResponse</Action></s:Header>
  <s:Body><FileResponse xmlns="https://services.ird.govt.nz/GWS/Returns/"><FileResult>
    <d4p1:FileResponseWrapper xmlns:d4p1="https://services.ird.govt.nz/GWS/Returns/:types/FileResponse">
      <fileResponse xmlns="urn:www.ird.govt.nz/GWS:types/ReturnCommon.v1">
        <statusMessage xmlns="urn:www.ird.govt.nz/GWS:types/Common.v1"><statusCode>0</statusCode><errorMessage/></statusMessage>
        <responseBody><gatewayId>0000 002G M22W 9</gatewayId><submissionKey>1108852352</submissionKey></responseBody>
      </fileResponse>
    </d4p1:FileResponseWrapper>
  </FileResult></FileResponse></s:Body></s:Envelope>`)
	}))
	defer srv.Close()

	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	client, err := gatewayclient.New(gatewayclient.Options{
		// Against IR: the cloud listener with MutualTLS and a
		// ClientCertificate from LoadClientCertificate.
		Endpoints: map[gatewayclient.EndpointKind]gatewayclient.Endpoint{
			gatewayclient.EndpointDesktop: {BaseURL: srv.URL},
		},
		RootCAs: roots,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.CloseIdleConnections()

	res, err := client.Do(context.Background(), gatewayclient.Request{
		Endpoint:    gatewayclient.EndpointDesktop,
		Service:     gatewayclient.ServiceReturns,
		Operation:   "File",
		Payload:     []byte(`<fileRequest xmlns="urn:www.ird.govt.nz/GWS:types/ReturnGST.v1">...</fileRequest>`),
		Credentials: bearer("access-token"),
	})
	var ge *gatewayclient.Error
	switch {
	case errors.As(err, &ge):
		fmt.Println("failed:", ge.Class)
	case err != nil:
		fmt.Println("not sent:", err) // e.g. the caller's context was cancelled
	default:
		fmt.Println("filed:", res.GatewayID, res.SubmissionKey)
	}
	// Output: filed: 0000 002G M22W 9 1108852352
}
