package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

	"github.com/gatewayq/gatewayq/auth"
	"github.com/gatewayq/gatewayq/gatewayclient"
	"github.com/gatewayq/gatewayq/internal/redistest"
)

func ExampleNewM2MSigner() {
	// In production: key, cert, err := auth.LoadSigningKeyPair("m2m.key", "m2m.crt")
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "m2m"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	cert, _ := x509.ParseCertificate(der)

	signer, err := auth.NewM2MSigner(auth.M2MConfig{
		Key:      key,
		Cert:     cert,
		Issuer:   "my-dsp", // agreed with IR
		Lifetime: 30 * time.Minute,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	// The signer is a gatewayclient.Credentials for the REST APIs.
	var creds gatewayclient.Credentials = signer
	token, _ := creds.AuthorizationHeader(context.Background())

	parsed, _, _ := jwt.NewParser().ParseUnverified(token, jwt.MapClaims{})
	claims := parsed.Claims.(jwt.MapClaims)
	fmt.Println("alg:", parsed.Header["alg"], "kid:", parsed.Header["kid"])
	fmt.Println("iss:", claims["iss"], "sub is the thumbprint:", claims["sub"] == signer.Thumbprint())
	fmt.Println("sent bare:", !strings.HasPrefix(token, "Bearer"))
	// Output:
	// alg: ES256 kid: M2M
	// iss: my-dsp sub is the thumbprint: true
	// sent bare: true
}

func ExampleStore() {
	rdb := redis.NewClient(&redis.Options{Addr: redistest.Addr()})
	defer rdb.Close()
	ctx := context.Background()
	prefix := fmt.Sprintf("example:%d:", time.Now().UnixNano())

	key := make([]byte, 32) // from configuration, e.g. base64 in an owner-only file
	_, _ = rand.Read(key)
	store, err := auth.NewStore(rdb, prefix, auth.Keyring{Current: "2026-03", Keys: map[string][]byte{"2026-03": key}})
	if err != nil {
		fmt.Println(err)
		return
	}
	ts := auth.TokenSet{
		ID:          "customer-42",
		AccessToken: "at-from-ir",
		Expiry:      time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC), // IR's: now + expires_in (8 h)
		Endpoint:    gatewayclient.EndpointCloud,
		Scope:       "MYIR.Services",
		User:        "jane",
	}
	if err := store.Put(ctx, ts); err != nil {
		fmt.Println(err)
		return
	}
	defer store.Delete(ctx, ts.ID)

	fmt.Println(ts) // tokens are redacted
	header, _ := store.Credentials("customer-42").AuthorizationHeader(ctx)
	fmt.Println(header)
	infos, _ := store.List(ctx)
	fmt.Println(infos[0].ID, infos[0].User, infos[0].KeyID)
	_, err = store.Credentials("customer-7").AuthorizationHeader(ctx)
	fmt.Println(gatewayclient.ClassOf(err))
	// Output:
	// TokenSet{ID:customer-42 User:jane Endpoint:cloud Scope:MYIR.Services Expiry:2099-01-01T00:00:00Z ConsentedAt:0001-01-01T00:00:00Z AccessToken:[redacted] RefreshToken:}
	// Bearer at-from-ir
	// customer-42 jane 2026-03
	// auth
}

// A token set near expiry is refreshed once, whoever asks; a set IR
// refuses to refresh parks its jobs as needing re-consent.
func ExampleStore_Fresh() {
	// IR's OAuth server; here a stand-in with one single-use refresh token.
	var presented atomic.Int32
	ir := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != auth.DefaultTokenPath || r.PostFormValue("refresh_token") != "rt-1" || presented.Add(1) > 1 {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":"invalid_grant","error_description":"Invalid Grant: grant_type=refresh_token"}`)
			return
		}
		_, _ = io.WriteString(w, `{"access_token":"at-2","refresh_token":"rt-2","token_type":"Bearer","expires_in":"28800"}`)
	}))
	defer ir.Close()

	rdb := redis.NewClient(&redis.Options{Addr: redistest.Addr()})
	defer rdb.Close()
	ctx := context.Background()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	store, err := auth.NewStore(rdb, fmt.Sprintf("example:%d:", time.Now().UnixNano()), auth.Keyring{Current: "k1", Keys: map[string][]byte{"k1": key}})
	if err != nil {
		fmt.Println(err)
		return
	}
	store.SetLogger(slog.New(slog.DiscardHandler))
	store.SetOAuth(&auth.OAuthClient{
		BaseURL:      ir.URL, // IR: https://services.ird.govt.nz (paths default to /gateway3/oauth/...)
		ClientID:     "my-client",
		ClientSecret: "from-an-owner-only-file",
		HTTPClient:   ir.Client(), // carries the TLS roots
	})
	_ = store.Put(ctx, auth.TokenSet{ID: "customer-42", AccessToken: "at-1", RefreshToken: "rt-1",
		Expiry: time.Now().Add(2 * time.Minute), Endpoint: gatewayclient.EndpointCloud, User: "jane"})
	defer store.Delete(ctx, "customer-42")

	// Ten jobs want the set at once (in any number of processes): one refresh.
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = store.Fresh(ctx, "customer-42")
		}()
	}
	wg.Wait()
	header, _ := store.Credentials("customer-42").AuthorizationHeader(ctx)
	fmt.Println(header, "after", presented.Load(), "refresh")

	// IR answered statusCode 1 to a call made with that header: the handler
	// asks for a refresh after it. Here IR refuses (the user withdrew consent).
	err = store.Refresh(ctx, "customer-42", header)
	fmt.Println("needs consent:", errors.Is(err, auth.ErrNeedsConsent))
	_, err = store.Credentials("customer-42").AuthorizationHeader(ctx)
	fmt.Println(gatewayclient.ClassOf(err))
	// Output:
	// Bearer at-2 after 1 refresh
	// needs consent: true
	// auth
}
