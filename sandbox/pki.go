package sandbox

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// PKI is the sandbox's generated test PKI: a CA, the server certificate both
// listeners present, the client certificates the cloud listener accepts, and
// the M2M JWT signing pair "registered with IR" (separate from mTLS, as at
// IR). Everything is ECDSA P-256 — IR's cloud endpoint wants ECDHE-ECDSA
// suites — and PEM encoded; private keys are PKCS#8.
type PKI struct {
	CACertPEM     []byte
	ServerCertPEM []byte
	ServerKeyPEM  []byte
	Clients       []ClientCert
	// SigningCertPEM and SigningKeyPEM are the M2M JWT signing pair.
	SigningCertPEM []byte
	SigningKeyPEM  []byte
	// SigningThumbprint is the SHA-256 of the signing certificate's DER in
	// upper-case hex: the sub an M2M JWT must carry.
	SigningThumbprint string

	caCert     *x509.Certificate
	signingPub crypto.PublicKey
}

// ClientCert is one DSP client certificate for the cloud listener. Its CN
// has IR's shape: <32 lower-case hex>.irdgws.<domain>.
type ClientCert struct {
	CN      string
	CertPEM []byte
	KeyPEM  []byte
}

// TLSCertificate returns the pair for a tls.Config's Certificates.
func (c ClientCert) TLSCertificate() (tls.Certificate, error) {
	return tls.X509KeyPair(c.CertPEM, c.KeyPEM)
}

// CertPool returns a pool holding the sandbox CA, for a client's RootCAs.
func (p *PKI) CertPool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.CACertPEM)
	return pool
}

// PKIFiles are the paths WriteFiles wrote.
type PKIFiles struct {
	Dir         string
	CA          string // ca.pem
	ServerCert  string // server.pem
	ServerKey   string // server-key.pem
	ClientCert  string // client.pem (the first client)
	ClientKey   string // client-key.pem
	Clients     []ClientFiles
	SigningCert string // jwt-signing.pem
	SigningKey  string // jwt-signing-key.pem
}

// ClientFiles are one client's certificate and key paths.
type ClientFiles struct{ CN, Cert, Key string }

// WriteFiles writes the PKI into dir (created 0700): ca.pem, server.pem,
// server-key.pem, client.pem and client-key.pem (the first client),
// client-N.pem and client-N-key.pem for every client N ≥ 2, jwt-signing.pem
// and jwt-signing-key.pem. Private keys are written 0600, certificates 0644.
func (p *PKI) WriteFiles(dir string) (PKIFiles, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return PKIFiles{}, fmt.Errorf("sandbox: pki dir: %w", err)
	}
	// MkdirAll leaves an existing directory's mode alone.
	if err := os.Chmod(dir, 0o700); err != nil {
		return PKIFiles{}, fmt.Errorf("sandbox: pki dir: %w", err)
	}
	files := PKIFiles{
		Dir:         dir,
		CA:          filepath.Join(dir, "ca.pem"),
		ServerCert:  filepath.Join(dir, "server.pem"),
		ServerKey:   filepath.Join(dir, "server-key.pem"),
		SigningCert: filepath.Join(dir, "jwt-signing.pem"),
		SigningKey:  filepath.Join(dir, "jwt-signing-key.pem"),
	}
	type out struct {
		path   string
		data   []byte
		secret bool
	}
	outs := []out{
		{files.CA, p.CACertPEM, false},
		{files.ServerCert, p.ServerCertPEM, false},
		{files.ServerKey, p.ServerKeyPEM, true},
		{files.SigningCert, p.SigningCertPEM, false},
		{files.SigningKey, p.SigningKeyPEM, true},
	}
	for i, c := range p.Clients {
		cf := ClientFiles{CN: c.CN, Cert: filepath.Join(dir, "client.pem"), Key: filepath.Join(dir, "client-key.pem")}
		if i > 0 {
			cf.Cert = filepath.Join(dir, fmt.Sprintf("client-%d.pem", i+1))
			cf.Key = filepath.Join(dir, fmt.Sprintf("client-%d-key.pem", i+1))
		}
		files.Clients = append(files.Clients, cf)
		outs = append(outs, out{cf.Cert, c.CertPEM, false}, out{cf.Key, c.KeyPEM, true})
	}
	if len(files.Clients) > 0 {
		files.ClientCert, files.ClientKey = files.Clients[0].Cert, files.Clients[0].Key
	}
	for _, o := range outs {
		mode := os.FileMode(0o644)
		if o.secret {
			mode = 0o600
		}
		if err := writeFile(o.path, o.data, mode); err != nil {
			return PKIFiles{}, err
		}
	}
	return files, nil
}

// writeFile writes through a temporary file and a rename, so a reader never
// sees half a key and a key file is never, even briefly, more open than mode.
func writeFile(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("sandbox: write %s: %w", filepath.Base(path), err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("sandbox: write %s: %w", filepath.Base(path), err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("sandbox: write %s: %w", filepath.Base(path), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("sandbox: write %s: %w", filepath.Base(path), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("sandbox: write %s: %w", filepath.Base(path), err)
	}
	return nil
}

// pkiParams are New's inputs to generatePKI.
type pkiParams struct {
	domain      string
	clients     int
	serverNames []string // extra DNS names / IPs for the server certificate
	now         time.Time
}

func generatePKI(p pkiParams) (*PKI, error) {
	notBefore := p.now.Add(-time.Hour)
	notAfter := p.now.Add(365 * 24 * time.Hour)

	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("sandbox: ca key: %w", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "gatewayq sandbox CA", Organization: []string{"gatewayq sandbox"}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("sandbox: ca cert: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("sandbox: ca cert: %w", err)
	}
	pki := &PKI{CACertPEM: certPEM(caDER), caCert: caCert}

	// Server certificate for both listeners.
	srvTmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "gatewayq sandbox gateway"},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	for _, name := range p.serverNames {
		if ip := net.ParseIP(name); ip != nil {
			srvTmpl.IPAddresses = append(srvTmpl.IPAddresses, ip)
		} else if name != "" {
			srvTmpl.DNSNames = append(srvTmpl.DNSNames, name)
		}
	}
	if pki.ServerCertPEM, pki.ServerKeyPEM, err = issue(srvTmpl, caCert, caKey); err != nil {
		return nil, fmt.Errorf("sandbox: server cert: %w", err)
	}

	for range p.clients {
		var id [16]byte
		_, _ = rand.Read(id[:])
		cn := hex.EncodeToString(id[:]) + ".irdgws." + p.domain
		tmpl := &x509.Certificate{
			SerialNumber: serial(),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    notBefore,
			NotAfter:     notAfter,
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}
		certPEMBytes, keyPEM, err := issue(tmpl, caCert, caKey)
		if err != nil {
			return nil, fmt.Errorf("sandbox: client cert: %w", err)
		}
		pki.Clients = append(pki.Clients, ClientCert{CN: cn, CertPEM: certPEMBytes, KeyPEM: keyPEM})
	}

	// The M2M signing pair is self-signed: IR registers the certificate
	// itself (by thumbprint), it is not chained to any CA.
	sigKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("sandbox: signing key: %w", err)
	}
	sigTmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "gatewayq sandbox M2M signing"},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	sigDER, err := x509.CreateCertificate(rand.Reader, sigTmpl, sigTmpl, &sigKey.PublicKey, sigKey)
	if err != nil {
		return nil, fmt.Errorf("sandbox: signing cert: %w", err)
	}
	sigKeyDER, err := x509.MarshalPKCS8PrivateKey(sigKey)
	if err != nil {
		return nil, fmt.Errorf("sandbox: signing key: %w", err)
	}
	sum := sha256.Sum256(sigDER)
	pki.SigningCertPEM = certPEM(sigDER)
	pki.SigningKeyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: sigKeyDER})
	pki.SigningThumbprint = strings.ToUpper(hex.EncodeToString(sum[:]))
	pki.signingPub = &sigKey.PublicKey
	return pki, nil
}

func issue(tmpl, ca *x509.Certificate, caKey *ecdsa.PrivateKey) (certPEMBytes, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return certPEM(der), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

func certPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		// crypto/rand does not fail on supported platforms; a constant
		// serial would still give a usable (if not unique) test PKI.
		return big.NewInt(1)
	}
	return n.Add(n, big.NewInt(1))
}

// errNoSigningKey is returned by m2m verification when the PKI has no
// signing certificate (never with a generated PKI).
var errNoSigningKey = errors.New("sandbox: no M2M signing certificate registered")
