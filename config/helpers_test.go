package config

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// writeFile writes data to name in dir with exactly mode (whatever the
// umask) and returns its path.
func writeFile(t *testing.T, dir, name string, data []byte, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// testKey is a 32-byte AES key in base64, as tokens.encryption_key wants.
var testKey = base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))

// pemPair is a certificate and its private key, PEM encoded.
type pemPair struct{ cert, key []byte }

// rsaPair is generated once: RSA key generation is slow under -race.
var rsaPair = sync.OnceValue(func() pemPair {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return selfSigned(k)
})

func ecPair(curve elliptic.Curve) pemPair {
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		panic(err)
	}
	return selfSigned(k)
}

func selfSigned(k crypto.Signer) pemPair {
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "0123456789abcdef0123456789abcdef.irdgws.example.co.nz"},
		NotBefore:    time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(2035, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		panic(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		panic(err)
	}
	return pemPair{
		cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		key:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
	}
}

// withFiles is a production Config whose every file exists with the right
// permissions in a fresh directory, valid for RoleWorker.
func withFiles(t *testing.T) (*Config, string) {
	t.Helper()
	dir := t.TempDir()
	tlsPair := ecPair(elliptic.P256())
	m2mPair := ecPair(elliptic.P256())
	c := Default(ProfileProduction)
	c.Redis.Addr = "redis.internal:6379"
	c.TLS.ClientCert = writeFile(t, dir, "client.crt", tlsPair.cert, 0o644)
	c.TLS.ClientKey = writeFile(t, dir, "client.key", tlsPair.key, 0o600)
	c.TLS.CABundle = writeFile(t, dir, "ca.pem", tlsPair.cert, 0o644)
	c.M2M.SigningCert = writeFile(t, dir, "signing.crt", m2mPair.cert, 0o644)
	c.M2M.SigningKey = writeFile(t, dir, "signing.key", m2mPair.key, 0o600)
	c.M2M.Algorithm = "ES256"
	c.M2M.Issuer = "my-dsp"
	c.OAuth.ClientID = "client"
	c.OAuth.ClientSecret = "s3cret-client-secret"
	c.Tokens.EncryptionKey = testKey
	return c, dir
}

// fieldsOf returns the fields named by err, sorted.
func fieldsOf(err error) []string {
	f := Fields(err)
	slices.Sort(f)
	return f
}

func env(kv ...string) []string { return kv }

// assertNoSecret fails if err's text contains any of the secrets.
func assertNoSecret(t *testing.T, err error, secrets ...string) {
	t.Helper()
	if err == nil {
		return
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(err.Error(), s) {
			t.Errorf("error leaks a secret: %v", err)
		}
	}
}
